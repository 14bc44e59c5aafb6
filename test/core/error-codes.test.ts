/**
 * Error codes are part of moat's output format (JSON log lines, `--json` error documents, run
 * records): docs/operations.md lists exactly the codes of the union in src/core/errors.ts.
 */
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../../src/core/errors.js';

const OPERATIONS = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');

function documentedCodes(): string[] {
  const section = OPERATIONS.split(/^## /m).find((s) => s.startsWith('Error codes'));
  if (section === undefined) throw new Error('docs/operations.md has no "## Error codes" section');
  return [...section.matchAll(/^\| `([a-z-]+)` +\|/gm)].map((m) => m[1] ?? '');
}

describe('error codes', () => {
  test('docs/operations.md documents every code, once, and no other', () => {
    const documented = documentedCodes();
    expect(documented.length).toBeGreaterThan(10);
    expect(new Set(documented).size).toBe(documented.length);
    expect([...documented].sort()).toEqual([...ERROR_CODES].sort());
  });
});
