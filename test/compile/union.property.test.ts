/**
 * Rules add up, for every rule set: over generated policies (groups, overlapping port ranges,
 * sources of both families, `any`, `host`, both defaults), the rules moat compiles admit on each
 * port exactly the union of the sources of every rule naming it, and on ports no rule names what
 * the default says, on the DNAT path and the docker-proxy path, in both families. The rules are
 * asked through the same evaluation the plan's words come from.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { compile } from '../../src/compile/compile.js';
import type { Family, IngressRule, IngressSource, Policy } from '../../src/policy/model.js';
import { desiredView, reachOn, type Reach } from '../../src/plan/reach.js';
import { group, inventory, policy } from '../support/builders.js';

const PORTS = 24; // a small port space, so generated ranges overlap often
const CIDRS: readonly { family: Family; cidr: string }[] = [
  { family: 'ipv4', cidr: '10.0.0.0/8' },
  { family: 'ipv4', cidr: '198.51.100.0/24' },
  { family: 'ipv4', cidr: '203.0.113.7/32' },
  { family: 'ipv6', cidr: '2001:db8::/32' },
  { family: 'ipv6', cidr: '2001:db8:100::2/128' },
];

const source: fc.Arbitrary<IngressSource> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(...CIDRS).map((block) => ({ kind: 'cidr', block }) as const),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'any' } as const) },
  { weight: 2, arbitrary: fc.constant({ kind: 'host' } as const) },
);

const rule: fc.Arbitrary<IngressRule> = fc
  .record({
    first: fc.integer({ min: 1, max: PORTS }),
    width: fc.integer({ min: 0, max: 8 }),
    protocol: fc.constantFrom('tcp' as const, 'udp' as const),
    from: fc.array(source, { minLength: 1, maxLength: 3 }),
  })
  .map(({ first, width, protocol, from }) => ({
    ports: [{ protocol, first, last: Math.min(PORTS, first + width) }],
    from,
  }));

const policies: fc.Arbitrary<Policy> = fc
  .record({
    groups: fc.array(fc.array(rule, { minLength: 0, maxLength: 4 }), {
      minLength: 1,
      maxLength: 4,
    }),
    defaultHost: fc.boolean(),
  })
  .map(({ groups, defaultHost }) =>
    policy(
      groups.map((ingress, i) => group(`g${i}`, { ingress })),
      { defaults: { ingress: defaultHost ? 'host' : 'allow', egress: 'allow' } },
    ),
  );

/** What the policy says a port admits in one family: the union of every rule naming it. */
function expected(p: Policy, protocol: 'tcp' | 'udp', port: number, family: Family): Reach {
  const naming = p.containers
    .flatMap((g) => g.ingress)
    .filter(
      (r) =>
        r.ports !== 'all' &&
        r.ports.some((x) => x.protocol === protocol && x.first <= port && port <= x.last),
    );
  if (naming.length === 0)
    return p.defaults.ingress === 'host'
      ? { anyone: false, sources: [] }
      : { anyone: true, sources: [] };
  const all = naming.flatMap((r) => r.from);
  if (all.some((s) => s.kind === 'any')) return { anyone: true, sources: [] };
  const sources = all.flatMap((s) =>
    s.kind === 'cidr' && s.block.family === family ? [s.block.cidr] : [],
  );
  return { anyone: false, sources: [...new Set(sources)].sort() };
}

describe('rules add up, for generated rule sets', () => {
  test('each port admits the union of the rules naming it, on every path and family', () => {
    fc.assert(
      fc.property(policies, (p) => {
        const desired = compile(p, inventory());
        for (const family of ['ipv4', 'ipv6'] as const) {
          const view = desiredView(desired.families[family]);
          for (const protocol of ['tcp', 'udp'] as const) {
            for (let port = 1; port <= PORTS + 1; port++) {
              const want = expected(p, protocol, port, family);
              const packet = { family, protocol, port, containerPort: port };
              const dnat = reachOn(view, { ...packet, path: 'dnat', outInterface: 'docker0' });
              expect({ port, protocol, family, dnat }).toEqual({
                port,
                protocol,
                family,
                dnat: want,
              });
              // docker-proxy: ports no rule names are restricted there only when published.
              if (want.anyone) continue;
              const named = p.containers.some((g) =>
                g.ingress.some(
                  (r) =>
                    r.ports !== 'all' &&
                    r.ports.some(
                      (x) => x.protocol === protocol && x.first <= port && port <= x.last,
                    ),
                ),
              );
              if (!named) continue;
              const proxy = reachOn(view, { ...packet, path: 'proxy' });
              expect({ port, protocol, family, proxy }).toEqual({
                port,
                protocol,
                family,
                proxy: want,
              });
            }
          }
        }
      }),
      { numRuns: 150 },
    );
  });

  test('a packet meets at most one port rule of MOAT-INGRESS (segments are disjoint)', () => {
    fc.assert(
      fc.property(policies, (p) => {
        const desired = compile(p, inventory());
        const rules = (
          desired.families.ipv4.chains.find((c) => c.name === 'MOAT-INGRESS')?.rules ?? []
        )
          .map((r) => /-p (\w+) -m conntrack --ctorigdstport (\d+)(?::(\d+))?/.exec(r.spec))
          .filter((m): m is RegExpExecArray => m !== null)
          .map((m) => ({ protocol: m[1], first: Number(m[2]), last: Number(m[3] ?? m[2]) }));
        for (let i = 0; i < rules.length; i++)
          for (let j = i + 1; j < rules.length; j++) {
            const [a, b] = [rules[i]!, rules[j]!];
            const overlap = a.protocol === b.protocol && a.first <= b.last && b.first <= a.last;
            expect({ a, b, overlap }).toEqual({ a, b, overlap: false });
          }
      }),
      { numRuns: 200 },
    );
  });
});
