/**
 * Random and mutated policies: the parser answers with a policy or with located diagnostics,
 * never with a throw, and its quick path answers exactly as the reference reader.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { parsePolicy, parsePolicyLocated } from '../../src/policy/parse.js';

function assertLocated(text: string): void {
  let result;
  try {
    result = parsePolicy(text, 'f.yaml');
  } catch (error) {
    throw new Error(`parsePolicy threw on ${JSON.stringify(text.slice(0, 200))}: ${String(error)}`);
  }
  // The quick reader (js-yaml) never changes the answer of the reference reader.
  expect(result).toEqual(parsePolicyLocated(text, 'f.yaml'));
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  expect(result.policy === undefined).toBe(errors.length > 0);
  const lines = text.split('\n').length;
  for (const d of result.diagnostics) {
    expect(d.line).toBeGreaterThanOrEqual(1);
    expect(d.column).toBeGreaterThanOrEqual(1);
    expect(d.line).toBeLessThanOrEqual(lines + 1);
    expect(d.message.length).toBeGreaterThan(0);
    expect(d.message).not.toMatch(/\n/);
  }
}

const token = fc.oneof(
  fc.constantFrom('host', 'any', 'all', 'ipset:allowed', 'container:ghost', 'container:nope'),
  fc.constantFrom('10.0.0.0/8', '10.0.5.1/24', '2001:db8::/32', '::ffff:1.2.3.4', '300.1.1.1'),
  fc.constantFrom('2368', '2368/tcp', '9000/udp', '8000-8100/tcp', '9-1', '0', '70000'),
  fc.string({ maxLength: 12 }),
  fc.integer({ min: -5, max: 70000 }),
);
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    token,
    fc.constant(null),
    fc.boolean(),
    fc.array(tie('node'), { maxLength: 4 }),
    fc.dictionary(
      fc.constantFrom(
        'ports',
        'from',
        'to',
        'select',
        'name',
        'label',
        'default',
        'allow',
        'deny',
        'x',
      ),
      tie('node'),
      { maxKeys: 3 },
    ),
  ),
})).node;

const rule = fc.record(
  {
    ports: fc.oneof(token, fc.array(token, { maxLength: 3 })),
    from: fc.array(token, { maxLength: 3 }),
  },
  { requiredKeys: [] },
);
const policy = fc.record(
  {
    version: fc.oneof(fc.constant(1), token),
    defaults: fc.record(
      {
        ingress: fc.constantFrom('allow', 'host', 'deny'),
        egress: fc.constantFrom('allow', 'deny', 'host'),
      },
      { requiredKeys: [] },
    ),
    ipsets: fc.dictionary(
      fc.oneof(fc.constantFrom('allowed', 'office', 'a'.repeat(30)), fc.string({ maxLength: 8 })),
      fc.oneof(
        fc.record(
          {
            family: fc.constantFrom('ipv4', 'ipv6'),
            type: fc.constantFrom('hash:ip', 'hash:net'),
            entries: fc.array(token, { maxLength: 3 }),
          },
          { requiredKeys: [] },
        ),
        fc.record({ external: fc.boolean(), name: token }),
        value,
      ),
      { maxKeys: 3 },
    ),
    containers: fc.dictionary(
      fc.oneof(fc.constantFrom('ghost', 'db'), fc.string({ maxLength: 8 })),
      fc.oneof(
        fc.record(
          {
            select: fc.oneof(fc.record({ name: token }), fc.record({ label: token }), value),
            ingress: fc.array(rule, { maxLength: 3 }),
            egress: fc.record(
              {
                default: token,
                allow: fc.array(
                  fc.record({ to: fc.array(token), ports: token }, { requiredKeys: [] }),
                  { maxLength: 2 },
                ),
              },
              { requiredKeys: [] },
            ),
          },
          { requiredKeys: [] },
        ),
        value,
      ),
      { maxKeys: 3 },
    ),
  },
  { requiredKeys: [] },
);

describe('parsePolicy never throws and always locates', () => {
  test('generated policies (thousands)', () => {
    fc.assert(
      fc.property(policy, fc.constantFrom<'block' | 'flow'>('block', 'flow'), (p, style) => {
        const text = stringify(p, style === 'flow' ? { collectionStyle: 'flow' } : {});
        assertLocated(text);
      }),
      { numRuns: 3000 },
    );
  });

  test('mutated text: bytes inserted, deleted, replaced', () => {
    const base = stringify({
      version: 1,
      ipsets: {
        allowed: { entries: ['203.0.113.0/24'] },
        office: { external: true, name: 'office-vpn' },
      },
      containers: {
        ghost: {
          ingress: [{ ports: ['2368/tcp'], from: ['host', 'ipset:office'] }],
          egress: { default: 'deny', allow: [{ to: ['ipset:allowed'], ports: [443] }] },
        },
      },
    });
    assertLocated(base);
    expect(parsePolicy(base, 'f').policy).toBeDefined();
    const edit = fc.record({
      at: fc.nat({ max: base.length }),
      remove: fc.nat({ max: 6 }),
      insert: fc.oneof(
        fc.string({ maxLength: 6 }),
        fc.constantFrom(
          '\n',
          ':',
          '- ',
          '[',
          ']',
          '{',
          '"',
          "'",
          '&a ',
          '*a',
          '\t',
          '#',
          '---\n',
          '\u0000',
          '? ',
        ),
      ),
    });
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        let text = base;
        for (const e of edits) {
          const at = Math.min(e.at, text.length);
          text = text.slice(0, at) + e.insert + text.slice(at + e.remove);
        }
        assertLocated(text);
      }),
      { numRuns: 4000 },
    );
  });

  test('arbitrary unicode and binary text', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ maxLength: 200 })),
        (text) => {
          assertLocated(text);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
