/** firewall.tests.yaml: assertions read with every mistake located at FILE:LINE:COL. */
import { describe, expect, test } from '@jest/globals';
import { parseTestsFile } from '../../src/explain/tests-file.js';

const FILE = 'firewall.tests.yaml';

describe('parseTestsFile', () => {
  test('reads tests with their positions', () => {
    const text = [
      'version: 1',
      'tests:',
      '  - name: admin port is for the host only',
      '    from: anyone',
      '    to: ghost:2368/tcp',
      '    expect: blocked',
      '  - from: 198.51.100.0/24',
      '    to: "[2001:db8::1]:443"',
      '    expect: reachable',
      '    family: ipv6',
      '',
    ].join('\n');
    const result = parseTestsFile(text, FILE);
    expect(result.diagnostics).toEqual([]);
    expect(result.tests).toMatchObject([
      {
        name: 'admin port is for the host only',
        fromText: 'anyone',
        toText: 'ghost:2368/tcp',
        expect: 'blocked',
        line: 3,
        column: 5,
      },
      {
        fromText: '198.51.100.0/24',
        expect: 'reachable',
        families: ['ipv6'],
        line: 7,
        column: 5,
        to: { kind: 'address', port: 443 },
      },
    ]);
  });

  test('every mistake is reported where it is', () => {
    const text = [
      'version: 1',
      'tests:',
      '  - from: nowhere',
      '    to: ghost',
      '    expect: open',
      '    colour: blue',
      '  - to: ghost:1/udp',
      '    expect: blocked',
      '',
    ].join('\n');
    const result = parseTestsFile(text, FILE);
    expect(result.tests).toBeUndefined();
    expect(result.diagnostics.map((d) => `${d.line}:${d.column} ${d.code}`)).toEqual([
      '3:11 bad-from',
      '4:9 bad-to',
      '5:13 bad-expect',
      '6:5 unknown-key',
      '7:5 missing-key',
    ]);
    expect(result.diagnostics[0]?.message).toMatch(/"nowhere" is not a source/);
  });

  test('the top level must hold tests', () => {
    expect(parseTestsFile('version: 2\n', FILE).diagnostics.map((d) => d.code)).toEqual([
      'bad-version',
      'no-tests',
    ]);
    expect(parseTestsFile('- a\n', FILE).diagnostics.map((d) => d.code)).toEqual(['not-a-mapping']);
    expect(parseTestsFile('tests: [\n', FILE).diagnostics[0]?.code).toBe('yaml-syntax');
  });
});
