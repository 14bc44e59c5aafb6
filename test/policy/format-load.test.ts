import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../src/core/errors.js';
import { formatDiagnostic } from '../../src/policy/format.js';
import { loadPolicyFile } from '../../src/policy/load.js';
import { parsePolicy } from '../../src/policy/parse.js';

const GHOST =
  'version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ports: [2368/tcp]\n        from: [hots]\n';

describe('formatDiagnostic', () => {
  test('location, message and a code frame underlining the token', () => {
    const [d] = parsePolicy(GHOST, 'firewall.yaml').diagnostics;
    expect(formatDiagnostic(d!, GHOST)).toBe(
      [
        'firewall.yaml:6:16: error: expected one of host, any, a CIDR, ipset:NAME, container:GROUP; found `hots`',
        ' 6 |         from: [hots]',
        '   |                ^^^^',
      ].join('\n'),
    );
  });

  test('quoted tokens are underlined whole; control characters keep the caret aligned', () => {
    const text = 'version: 1\ncontainers:\n  g:\n    select: {label: "a b"}\n';
    const [d] = parsePolicy(text, 'f').diagnostics;
    expect(formatDiagnostic(d!, text).split('\n').slice(1)).toEqual([
      ' 4 |     select: {label: "a b"}',
      '   |                     ^^^^^',
    ]);
    const tabbed = formatDiagnostic({ ...d!, line: 1, column: 3 }, 'a\tb\u0007c');
    expect(tabbed.split('\n').slice(1)).toEqual([' 1 | a b\ufffdc', '   |   ^^^']);
  });

  test('color wraps severity in ANSI codes only when asked', () => {
    const [d] = parsePolicy(GHOST, 'f').diagnostics;
    expect(formatDiagnostic(d!, GHOST, { color: true })).toContain('\u001b[31merror:\u001b[0m');
    expect(formatDiagnostic(d!, GHOST)).not.toContain('\u001b');
  });

  test('a very long line is cut around the column; a line past the end has no frame', () => {
    const text = `${'x'.repeat(5000)}Y${'z'.repeat(5000)}`;
    const out = formatDiagnostic(
      { file: 'f', line: 1, column: 5001, severity: 'error', code: 'c', message: 'm' },
      text,
    );
    const [, frame, caret] = out.split('\n');
    expect(frame!.length).toBeLessThan(120);
    expect(frame![caret!.indexOf('^')]).toBe('Y');
    expect(
      formatDiagnostic(
        { file: 'f', line: 9, column: 1, severity: 'error', code: 'c', message: 'm' },
        'a',
      ),
    ).toBe('f:9:1: error: m');
  });
});

describe('loadPolicyFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-policy-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('reads and validates a file, returning its text', async () => {
    const path = join(dir, 'ok.yaml');
    writeFileSync(path, GHOST.replace('hots', 'host'));
    const result = await loadPolicyFile(path);
    expect(result.diagnostics).toEqual([]);
    expect(result.policy?.containers[0]?.name).toBe('ghost');
    expect(result.text).toContain('ghost');
  });

  test('a missing file or a directory is a UserError naming the path', async () => {
    const missing = join(dir, 'nope.yaml');
    await expect(loadPolicyFile(missing)).rejects.toThrow(UserError);
    await expect(loadPolicyFile(missing)).rejects.toThrow(`${missing}: no such file`);
    await expect(loadPolicyFile(dir)).rejects.toThrow(dir);
  });

  test('a file over 1 MiB is a diagnostic at 1:1, not read whole', async () => {
    const path = join(dir, 'big.yaml');
    writeFileSync(path, `version: 1\n#${'x'.repeat(2 * 1024 * 1024)}\n`);
    const result = await loadPolicyFile(path);
    expect(result.policy).toBeUndefined();
    expect(result.diagnostics).toEqual([
      expect.objectContaining({ file: path, line: 1, column: 1, code: 'too-large' }),
    ]);
  });
});
