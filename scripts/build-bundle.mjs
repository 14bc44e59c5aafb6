/**
 * Bundle the compiled CLI (dist/cli/main.js, from `tsc -p tsconfig.build.json`) and its
 * dependencies into dist/bundle/, which bin/moat runs. One file per command group instead of
 * ~300 modules resolved and read one by one: a run starts in about half the time
 * (docs/performance.md). Commands are split into chunks loaded only when that command runs.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));

// Chunk names carry content hashes: clear the old ones.
rmSync(new URL('dist/bundle', root), { recursive: true, force: true });

const result = await build({
  absWorkingDir: root.pathname,
  entryPoints: ['dist/cli/main.js'],
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  // The oldest Node.js moat runs on: Debian 12's and Ubuntu 24.04's (package.json `engines`).
  target: 'node18.19',
  // Whitespace and syntax only: names stay readable in `--debug` stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  define: { __MOAT_VERSION__: JSON.stringify(pkg.version) },
  // Bundled CommonJS packages require node's built-ins; ESM output has no `require` of its own.
  banner: {
    js: "import { createRequire as __moatCreateRequire } from 'node:module'; const require = __moatCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
  metafile: true,
});

// Which npm packages went into the bundle: the Debian package's copyright file lists them
// (scripts/package-deb.sh). Kept beside the bundle, not in it.
writeFileSync(new URL('dist/bundle-meta.json', root), JSON.stringify(result.metafile));
