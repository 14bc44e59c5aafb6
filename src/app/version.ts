/** moat's version: set by the bundler (scripts/build-bundle.mjs), else read from package.json. */
import { readFileSync } from 'node:fs';

declare const __MOAT_VERSION__: string | undefined;

function readVersion(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export const TOOL_VERSION = typeof __MOAT_VERSION__ === 'string' ? __MOAT_VERSION__ : readVersion();
