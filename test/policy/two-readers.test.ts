/**
 * parsePolicy reads a file with js-yaml first and falls back to `yaml`, the reference reader
 * with positions (src/policy/parse.ts). The two paths must give the same answer on every file:
 * the quick one is only a shortcut.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parsePolicy, parsePolicyLocated, parsePolicyQuickly } from '../../src/policy/parse.js';

const ROOT = join(import.meta.dirname, '../..');

function sameAnswer(text: string): boolean {
  const reference = parsePolicyLocated(text, 'f.yaml');
  expect(parsePolicy(text, 'f.yaml')).toEqual(reference);
  const quick = parsePolicyQuickly(text);
  // When the shortcut answers, it is exactly the reference's silent success.
  if (quick !== undefined) expect(reference).toEqual({ policy: quick, diagnostics: [] });
  return quick !== undefined;
}

const name = fc.constantFrom('ghost', 'db', 'web-1', 'api_2', 'mailer');
const port = fc.oneof(
  fc.integer({ min: 1, max: 65535 }),
  fc.constantFrom('2368/tcp', '53/udp', '8000-8100/tcp', '443'),
);
const cidr = fc.constantFrom('10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '203.0.113.0/28');
const source = fc.oneof(
  fc.constantFrom('host', 'any', 'ipset:allowed', 'container:ghost', 'container:db'),
  cidr,
);
const destination = fc.oneof(fc.constantFrom('ipset:allowed', 'container:db', 'any'), cidr);
const group = fc.record(
  {
    select: fc.oneof(
      fc.record({ name: fc.constantFrom('ghost', 'postgres', 'web') }),
      fc.record({ label: fc.constantFrom('backup=true', 'tier') }),
      fc.record({ compose: fc.record({ project: fc.constant('shop'), service: name }) }),
    ),
    ingress: fc.array(
      fc.record({
        ports: fc.oneof(fc.constant('all'), fc.array(port, { minLength: 1, maxLength: 3 })),
        from: fc.array(source, { minLength: 1, maxLength: 3 }),
      }),
      { maxLength: 2 },
    ),
    egress: fc.oneof(
      fc.record(
        {
          default: fc.constant('deny'),
          allow: fc.array(
            fc.record(
              {
                to: fc.uniqueArray(destination, { minLength: 1, maxLength: 2 }),
                ports: fc.uniqueArray(port, { minLength: 1, maxLength: 2 }),
              },
              { requiredKeys: ['to'] },
            ),
            { maxLength: 2 },
          ),
        },
        { requiredKeys: ['default'] },
      ),
      fc.record({
        default: fc.constant('allow'),
        deny: fc.array(fc.record({ to: fc.uniqueArray(cidr, { minLength: 1, maxLength: 2 }) }), {
          maxLength: 1,
        }),
      }),
    ),
  },
  { requiredKeys: [] },
);
const validish = fc.record(
  {
    version: fc.constant(1),
    defaults: fc.record(
      { ingress: fc.constantFrom('allow', 'host'), egress: fc.constantFrom('allow', 'deny') },
      { requiredKeys: [] },
    ),
    ipsets: fc.record({
      allowed: fc.record({
        family: fc.constant('ipv4'),
        entries: fc.uniqueArray(fc.constantFrom('203.0.113.5', '198.51.100.0/24', '192.0.2.1')),
      }),
    }),
    containers: fc
      .tuple(group, group, fc.dictionary(name, group, { maxKeys: 2 }))
      .map(([ghost, db, more]) => ({ ...more, ghost, db })),
  },
  { requiredKeys: ['version', 'ipsets', 'containers'] },
);
const style = fc.constantFrom(
  {},
  { collectionStyle: 'flow' as const },
  { defaultStringType: 'QUOTE_DOUBLE' as const },
  { defaultStringType: 'QUOTE_SINGLE' as const, defaultKeyType: 'PLAIN' as const },
  { indent: 4, indentSeq: false },
);

describe('the quick reader and the reference reader agree', () => {
  test('generated valid policies in several YAML styles, with comments', () => {
    let quick = 0;
    let runs = 0;
    fc.assert(
      fc.property(validish, style, fc.boolean(), (p, options, comment) => {
        let text = stringify(p, options);
        if (comment) text = `# firewall\n${text.replace('\n', ' # trailing\n')}`;
        runs++;
        if (sameAnswer(text)) quick++;
      }),
      { numRuns: 1500 },
    );
    // The shortcut must really be exercised, not always fall back.
    expect(quick).toBeGreaterThan(runs / 2);
  });

  test('every shipped example and golden policy takes the quick path to the same policy', () => {
    const files = [
      ...readdirSync(join(ROOT, 'examples'), { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => join(ROOT, 'examples', d.name, 'firewall.yaml')),
      join(ROOT, 'firewall.yaml'),
    ].filter((file) => {
      try {
        readFileSync(file);
        return true;
      } catch {
        return false;
      }
    });
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const file of files) {
      expect(sameAnswer(readFileSync(file, 'utf8'))).toBe(true);
    }
  });

  test.each([
    ['binary integers: numbers to js-yaml, strings in YAML 1.2', 'ports: [0b101]'],
    ['a YAML 1.1 directive', '%YAML 1.1\n---\nversion: 1\ncontainers: {}'],
    ['an explicit collection key', 'containers:\n  ? [ghost]\n  : {}'],
    ['a flow collection as a key', 'containers:\n  [ghost]: {}'],
    ['anchors and aliases', 'ports: &p [80]'],
  ])('%s: the reference reader decides', (_why, fragment) => {
    const text = fragment.startsWith('%')
      ? fragment
      : fragment.startsWith('containers')
        ? `version: 1\n${fragment}\n`
        : `version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ${fragment}\n        from: [host]\n`;
    expect(parsePolicyQuickly(text)).toBeUndefined();
    sameAnswer(text);
  });

  test.each([
    [
      'a byte-order mark before a YAML 1.1 directive',
      '\uFEFF%YAML 1.1\n---\nversion: 1\ncontainers:\n  yes: {}\n',
    ],
    ['a key that reads as null', 'version: 1\ncontainers:\n  null: {}\n'],
    ['a key that reads as null (~)', 'version: 1\ncontainers:\n  ~: {}\n'],
    ['an empty key', 'version: 1\ncontainers:\n  : {}\n'],
    ['a tag', 'version: !!float "1"\ncontainers: {}\n'],
    ['a tag on a name', 'version: 1\ncontainers:\n  !!str ghost: {}\n'],
    ['lines ended by a carriage return alone', 'version: 1\rcontainers: {}\r'],
  ])('%s: the reference reader decides, and agrees', (_why, text) => {
    expect(parsePolicyQuickly(text)).toBeUndefined();
    sameAnswer(text);
  });

  test('keys that name Object.prototype members read the same', () => {
    for (const text of [
      'version: 1\ncontainers:\n  __proto__:\n    ingress: [{ports: [80], from: [host]}]\n',
      'version: 1\n__proto__: {a: 1}\ncontainers: {}\n',
      'version: 1\ncontainers:\n  constructor: {}\n  toString: {}\n',
    ]) {
      sameAnswer(text);
    }
  });

  test('a port written 0b1010000 is refused, as YAML 1.2 reads it: a string', () => {
    const text =
      'version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ports: [0b1010000]\n        from: [host]\n';
    const result = parsePolicy(text, 'f.yaml');
    expect(result.policy).toBeUndefined();
    expect(result.diagnostics[0]?.line).toBe(5);
  });

  test('shared anchors still give the policy, through the reference reader', () => {
    const text =
      'version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ports: [2368]\n        from: &trusted [host, 10.0.0.0/8]\n  db:\n    ingress:\n      - ports: [5432]\n        from: *trusted\n';
    expect(parsePolicyQuickly(text)).toBeUndefined();
    const result = parsePolicy(text, 'f.yaml');
    expect(result.policy?.containers).toHaveLength(2);
  });
});
