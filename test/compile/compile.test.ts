import { describe, expect, test } from '@jest/globals';
import { compile } from '../../src/compile/compile.js';
import type { DesiredFamily } from '../../src/compile/model.js';
import { container, group, inventory, policy, tcp } from '../support/builders.js';

const hostOnlyGhost = policy([
  group('ghost', { ingress: [{ ports: [tcp(2368)], from: [{ kind: 'host' }] }] }),
]);

function specs(family: DesiredFamily, chain: string): string[] {
  return family.chains.find((c) => c.name === chain)?.rules.map((r) => r.spec) ?? [];
}

describe('compile: ingress', () => {
  test('a host-only port drops routed and proxied traffic to it, in both families', () => {
    const desired = compile(
      hostOnlyGhost,
      inventory(container('ghost', '172.17.0.2', [{ host: 2368 }])),
    );
    for (const family of [desired.families.ipv4, desired.families.ipv6]) {
      const forward = specs(family, 'MOAT-FORWARD');
      expect(forward[0]).toMatch(/^-m comment --comment "moat-digest:[0-9a-f]{12}"$/);
      expect(forward.slice(1, 3)).toEqual([
        '-m conntrack --ctdir REPLY -j RETURN',
        '-m conntrack --ctstate RELATED -j RETURN',
      ]);
      const portRule = forward[3] ?? '';
      expect(portRule).toMatch(
        /^-p tcp -m conntrack --ctstate DNAT --ctdir ORIGINAL --ctorigdstport 2368 -j MOAT-SRC-[0-9a-f]{10}$/,
      );
      const sources = portRule.split(' -j ')[1] ?? '';
      expect(specs(family, sources)).toEqual(['-j DROP']);
      expect(specs(family, 'MOAT-INPUT')).toContain(
        `! -i lo -p tcp -m tcp --dport 2368 -j ${sources}`,
      );
      expect(family.jumps.map((j) => [j.hook, j.rule.spec])).toEqual([
        ['DOCKER-USER', '-j MOAT-FORWARD'],
        ['INPUT', '-j MOAT-INPUT'],
      ]);
    }
    expect(desired.exposures).toEqual([{ group: 'ghost', port: '2368/tcp', reach: 'host only' }]);
  });

  test('protection is keyed on the host port: a new container address changes no rule', () => {
    const a = compile(hostOnlyGhost, inventory(container('ghost', '172.17.0.2', [{ host: 2368 }])));
    const b = compile(hostOnlyGhost, inventory(container('ghost', '172.30.0.3', [{ host: 2368 }])));
    const c = compile(hostOnlyGhost, inventory());
    expect(b.families).toEqual(a.families);
    expect(c.families).toEqual(a.families);
  });

  test('allowed sources return, per family; everything else to the port drops', () => {
    const p = policy([
      group('ghost', {
        ingress: [
          {
            ports: [tcp(8000, 8100)],
            from: [
              { kind: 'host' },
              { kind: 'cidr', block: { family: 'ipv4', cidr: '198.51.100.0/24' } },
              { kind: 'cidr', block: { family: 'ipv6', cidr: '2001:db8::/32' } },
            ],
          },
        ],
      }),
    ]);
    const desired = compile(p, inventory());
    const v4 = desired.families.ipv4;
    const portRule = specs(v4, 'MOAT-FORWARD').find((s) => s.includes('ctorigdstport')) ?? '';
    expect(portRule).toContain('--ctorigdstport 8000:8100');
    expect(specs(v4, portRule.split(' -j ')[1] ?? '')).toEqual([
      '-s 198.51.100.0/24 -j RETURN',
      '-j DROP',
    ]);
    const v6 = desired.families.ipv6;
    const portRule6 = specs(v6, 'MOAT-FORWARD').find((s) => s.includes('ctorigdstport')) ?? '';
    expect(specs(v6, portRule6.split(' -j ')[1] ?? '')).toEqual([
      '-s 2001:db8::/32 -j RETURN',
      '-j DROP',
    ]);
    expect(desired.exposures[0]?.reach).toBe('host, 198.51.100.0/24, 2001:db8::/32');
  });

  test('from: any leaves the port alone', () => {
    const p = policy([
      group('ghost', { ingress: [{ ports: [tcp(2368)], from: [{ kind: 'any' }] }] }),
    ]);
    const desired = compile(p, inventory(container('ghost', '172.17.0.2', [{ host: 2368 }])));
    expect(desired.families.ipv4.chains).toEqual([]);
    expect(desired.families.ipv4.jumps).toEqual([]);
  });

  test('defaults.ingress host protects every published port no rule names', () => {
    const p = policy([], { defaults: { ingress: 'host', egress: 'allow' } });
    const desired = compile(
      p,
      inventory(container('api', '172.30.0.2', [{ host: 9000, protocol: 'udp' }])),
    );
    const forward = specs(desired.families.ipv4, 'MOAT-FORWARD');
    expect(forward.some((s) => s.startsWith('-p udp') && s.includes('--ctorigdstport 9000'))).toBe(
      true,
    );
  });

  test('a published port no rule names is a warning under defaults.ingress allow', () => {
    const desired = compile(
      policy([]),
      inventory(container('api', '172.30.0.2', [{ host: 8080 }])),
    );
    expect(desired.warnings.map((w) => w.code)).toEqual(['uncovered-port']);
    expect(desired.warnings[0]?.message).toContain('api publishes 8080/tcp');
  });

  test('a port published only on loopback is not reported as reachable from anyone', () => {
    const api = container('api', '172.30.0.2', [], {
      ports: [{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
    });
    expect(compile(policy([]), inventory(api)).warnings).toEqual([]);
  });

  test('ports: all follows what the containers publish', () => {
    const p = policy([group('web', { ingress: [{ ports: 'all', from: [{ kind: 'host' }] }] })]);
    const desired = compile(
      p,
      inventory(container('web', '172.17.0.5', [{ host: 80 }, { host: 443 }])),
    );
    const forward = specs(desired.families.ipv4, 'MOAT-FORWARD').filter((s) =>
      s.includes('ctorigdstport'),
    );
    expect(forward.map((s) => /ctorigdstport (\d+)/.exec(s)?.[1])).toEqual(['80', '443']);
  });

  test('container names and labels never reach a rule', () => {
    const hostile = 'x" -j ACCEPT\n-A INPUT -j ACCEPT';
    const p = policy([
      group('web', {
        select: { kind: 'label', key: 'role' },
        ingress: [{ ports: [tcp(80)], from: [{ kind: 'container', group: 'web' }] }],
      }),
    ]);
    const desired = compile(
      p,
      inventory(container(hostile, '172.17.0.5', [{ host: 80 }], { labels: { role: hostile } })),
    );
    const all = desired.families.ipv4.chains.flatMap((c) => c.rules.map((r) => r.line));
    expect(all.length).toBeGreaterThan(0);
    for (const line of all) expect(line).not.toContain('ACCEPT');
    expect(all).toContain(
      '-m comment --comment "moat:' +
        (desired.families.ipv4.chains
          .flatMap((c) => c.rules)
          .find((r) => r.spec === '-s 172.17.0.5/32 -j RETURN')?.id ?? 'missing') +
        '" -s 172.17.0.5/32 -j RETURN',
    );
  });

  test('an empty policy wants nothing', () => {
    const desired = compile(policy([]), inventory());
    expect(desired.families.ipv4.chains).toEqual([]);
    expect(desired.families.ipv6.jumps).toEqual([]);
    expect(desired.ipsets).toEqual([]);
  });
});

describe('compile: egress', () => {
  test('an allowlist ipset: deny first, allow, then drop the rest, for each container address', () => {
    const p = policy(
      [
        group('app', {
          egress: {
            default: 'deny',
            allow: [
              { to: [{ kind: 'ipset', set: 'allowed' }] },
              {
                to: [{ kind: 'cidr', block: { family: 'ipv4', cidr: '10.0.5.0/24' } }],
                ports: [tcp(5432)],
              },
            ],
            deny: [{ to: [{ kind: 'cidr', block: { family: 'ipv4', cidr: '10.0.0.0/8' } }] }],
          },
        }),
      ],
      {
        ipsets: new Map([
          [
            'allowed',
            {
              kind: 'managed',
              key: 'allowed',
              kernelName: 'moat-allowed',
              family: 'ipv4',
              type: 'hash:net',
              entries: ['203.0.113.0/24'],
            },
          ],
        ]),
      },
    );
    const desired = compile(p, inventory(container('app', '172.17.0.9')));
    const v4 = desired.families.ipv4;
    const jump = specs(v4, 'MOAT-FORWARD').find((s) => s.startsWith('-s 172.17.0.9/32')) ?? '';
    const chain = jump.split(' -j ')[1] ?? '';
    expect(chain).toMatch(/^MOAT-EGR-/);
    expect(specs(v4, 'MOAT-INPUT')).toContain(jump);
    expect(specs(v4, chain)).toEqual([
      '-d 10.0.0.0/8 -j DROP',
      '-m set --match-set moat-allowed dst -j RETURN',
      '-d 10.0.5.0/24 -p tcp -m tcp --dport 5432 -j RETURN',
      '-j DROP',
    ]);
    expect(desired.ipsets).toEqual([
      { name: 'moat-allowed', type: 'hash:net', family: 'ipv4', members: ['203.0.113.0/24'] },
    ]);
    // The container has no IPv6 address: nothing to hook in IPv6.
    expect(desired.families.ipv6.chains).toEqual([]);
  });

  test('an external ipset that the host lacks is a user error', () => {
    const p = policy(
      [
        group('app', {
          egress: { default: 'deny', allow: [{ to: [{ kind: 'ipset', set: 'vpn' }] }], deny: [] },
        }),
      ],
      { ipsets: new Map([['vpn', { kind: 'external', key: 'vpn', kernelName: 'office-vpn' }]]) },
    );
    expect(() => compile(p, inventory(container('app', '172.17.0.9')))).toThrow(
      /external ipset "office-vpn".*does not exist/,
    );
  });

  test('defaults.egress deny also governs containers no group selects', () => {
    const p = policy([], { defaults: { ingress: 'allow', egress: 'deny' } });
    const desired = compile(p, inventory(container('stray', '172.17.0.7')));
    const forward = specs(desired.families.ipv4, 'MOAT-FORWARD');
    expect(forward.some((s) => s.startsWith('-s 172.17.0.7/32 -j MOAT-EGR-'))).toBe(true);
  });
});
