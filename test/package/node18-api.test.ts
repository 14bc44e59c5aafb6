/**
 * The run time (src/) uses nothing newer than Node.js 18.19, the oldest Node.js it supports
 * (Debian 12's 18.20, Ubuntu 24.04's 18.19): tsconfig.node18.json checks src/ against Node 18's
 * type definitions and ES2022. The Debian package test runs the bundle on Debian 12's Node.js.
 */
import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

function tsc(project: string): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [TSC, '-p', project], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

describe('src/ needs no Node.js newer than 18.19', () => {
  test('src/ type-checks against Node.js 18 and ES2022', () => {
    expect(tsc('tsconfig.node18.json')).toEqual({ status: 0, output: '' });
  });

  test('the check catches Node 20 APIs and ES2023 methods', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-node18-'));
    try {
      writeFileSync(
        join(dir, 'probe.ts'),
        [
          "import { styleText } from 'node:util';",
          'export const sorted = [2, 1].toSorted();',
          'export const here = import.meta.dirname;',
          'export const style = styleText;',
          '',
        ].join('\n'),
      );
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          extends: join(ROOT, 'tsconfig.node18.json'),
          compilerOptions: { rootDir: '.' },
          include: ['probe.ts'],
        }),
      );
      writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
      const { status, output } = tsc(join(dir, 'tsconfig.json'));
      expect(status).not.toBe(0);
      expect(output).toMatch(/'toSorted' does not exist/);
      expect(output).toMatch(/'dirname' does not exist on type 'ImportMeta'/);
      expect(output).toMatch(/has no exported member 'styleText'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
