/**
 * Print the Debian package's copyright file: packaging/debian/copyright.in (moat's own
 * paragraph), then one paragraph per npm package that esbuild put into dist/bundle, with that
 * package's own license text. The list comes from esbuild's metafile (dist/bundle-meta.json,
 * written by scripts/build-bundle.mjs), so a new dependency is credited without an edit here.
 *
 *   node scripts/deb-copyright.mjs > copyright
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('..', import.meta.url);

/** npm's SPDX names → the short names Debian's copyright format uses. */
const DEBIAN_LICENSE_NAMES = new Map([['MIT', 'Expat']]);

/**
 * The package directories (node_modules/…/name) esbuild read, from its metafile.
 * @param {{ inputs: Record<string, unknown> }} metafile
 * @returns {string[]}
 */
export function bundledPackages(metafile) {
  /** @type {Set<string>} */
  const dirs = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match?.[1] !== undefined) dirs.add(match[1]);
  }
  return [...dirs].sort();
}

/**
 * The copyright lines of a license text; a line ending in ':' takes the names that follow.
 * @param {string} text
 * @returns {string[]}
 */
function copyrightLines(text) {
  const lines = text.split('\n').map((l) => l.trim());
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    // "Copyright (c) 2011 …", "Copyright Eemeli Aro", not "copyright in it" or "the copyright notice".
    if (!/^copyright\s+(\(c\)|©|\d)/i.test(line) && !/^Copyright\s+[A-Z]/.test(line)) continue;
    if (!line.endsWith(':')) {
      out.push(line.replace(/^copyright\s+(\(c\)\s*|©\s*)?/i, ''));
      continue;
    }
    for (let j = i + 1; j < lines.length && lines[j] !== ''; j++) out.push(lines[j] ?? '');
  }
  return out;
}

/** @param {{ name: string, author?: unknown }} pkg */
function authorOf(pkg) {
  const { author } = pkg;
  if (typeof author === 'string') return author;
  if (typeof author === 'object' && author !== null && 'name' in author) return String(author.name);
  return `the authors of ${pkg.name}`;
}

/** A text as the value of a copyright-file field: indented, blank lines as " .". */
/** @param {string} text */
function fieldText(text) {
  return text
    .trim()
    .split('\n')
    .map((l) => (l.trim() === '' ? ' .' : ` ${l.trimEnd()}`))
    .join('\n');
}

/**
 * One Files paragraph for a bundled package.
 * @param {string} dir  node_modules/… relative to the repository
 */
function packageParagraph(dir) {
  const path = new URL(`${dir}/`, root);
  const pkg = /** @type {{ name: string, version: string, license?: string, author?: unknown }} */ (
    JSON.parse(readFileSync(new URL('package.json', path), 'utf8'))
  );
  const licenseFile = readdirSync(path).find((f) => /^licen[cs]e/i.test(f));
  if (licenseFile === undefined || pkg.license === undefined) {
    throw new Error(`${dir}: no license file or license field; cannot credit it`);
  }
  const text = readFileSync(new URL(licenseFile, path), 'utf8');
  const holders = copyrightLines(text);
  return [
    `Files: ${dir}/*`,
    `Copyright: ${holders.length > 0 ? holders.join('\n ') : authorOf(pkg)}`,
    `License: ${DEBIAN_LICENSE_NAMES.get(pkg.license) ?? pkg.license}`,
    fieldText(text),
    `Comment: ${pkg.name} ${pkg.version}, bundled into /usr/lib/moat/dist/bundle.`,
  ].join('\n');
}

/** The whole copyright file. */
export function debianCopyright() {
  const metafile = /** @type {{ inputs: Record<string, unknown> }} */ (
    JSON.parse(readFileSync(new URL('dist/bundle-meta.json', root), 'utf8'))
  );
  const head = readFileSync(new URL('packaging/debian/copyright.in', root), 'utf8').trimEnd();
  return `${[head, ...bundledPackages(metafile).map(packageParagraph)].join('\n\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(debianCopyright());
}
