/**
 * compile: what the rules do is asked of the rules themselves, through the same evaluation the
 * plan's words come from (src/plan/reach.ts), and the few structural facts that matter (hooks,
 * what is keyed on what) are checked as text.
 */
import { describe, expect, test } from '@jest/globals';
import { compile } from '../../src/compile/compile.js';
import { DEFAULT_HOST_FACTS, type Listener } from '../../src/compile/host-facts.js';
import type { DesiredFamily, DesiredState } from '../../src/compile/model.js';
import type { Family } from '../../src/policy/model.js';
import { desiredView, reachOn, type PathPacket, type Reach } from '../../src/plan/reach.js';
import {
  bridgeNetwork,
  container,
  group,
  inventory,
  inventoryWith,
  managedIpset,
  policy,
  tcp,
} from '../support/builders.js';

const HOST_ONLY: Reach = { anyone: false, sources: [] };
const ANYONE: Reach = { anyone: true, sources: [] };
const v4 = (cidr: string) => ({ kind: 'cidr', block: { family: 'ipv4', cidr } }) as const;
const v6 = (cidr: string) => ({ kind: 'cidr', block: { family: 'ipv6', cidr } }) as const;

const hostOnlyGhost = policy([
  group('ghost', { ingress: [{ ports: [tcp(2368)], from: [{ kind: 'host' }] }] }),
]);

function specs(family: DesiredFamily, chain: string): string[] {
  return family.chains.find((c) => c.name === chain)?.rules.map((r) => r.spec) ?? [];
}

/** Who passes moat's rules for a new connection DNATed to a host port (or on another path). */
function reach(desired: DesiredState, port: number, options: Partial<PathPacket> = {}): Reach {
  const family: Family = options.family ?? 'ipv4';
  return reachOn(desiredView(desired.families[family]), {
    family,
    path: 'dnat',
    protocol: 'tcp',
    port,
    containerPort: port,
    outInterface: 'docker0',
    ...options,
  });
}

describe('compile: published ports', () => {
  test('a host-only port: routed (DNAT) and proxied traffic to it drops, in both families', () => {
    const desired = compile(
      hostOnlyGhost,
      inventory(container('ghost', '172.17.0.2', [{ host: 2368 }])),
    );
    for (const family of ['ipv4', 'ipv6'] as const) {
      expect(reach(desired, 2368, { family })).toEqual(HOST_ONLY);
      expect(reach(desired, 2368, { family, path: 'proxy' })).toEqual(HOST_ONLY);
      expect(reach(desired, 2369, { family })).toEqual(ANYONE);
      const f = desired.families[family];
      expect(specs(f, 'MOAT-FORWARD')[0]).toMatch(
        /^-m comment --comment "moat-digest:[0-9a-f]{12}"$/,
      );
      expect(specs(f, 'MOAT-INGRESS')).toContain(
        '-p tcp -m conntrack --ctorigdstport 2368 -j DROP',
      );
      expect(specs(f, 'MOAT-INPUT')).toContain('! -i lo -p tcp -m tcp --dport 2368 -j DROP');
      expect(f.jumps.map((j) => [j.hook, j.rule.spec])).toEqual([
        ['DOCKER-USER', '-j MOAT-FORWARD'],
        ['INPUT', '-j MOAT-INPUT'],
      ]);
    }
  });

  test('DNAT and proxy protection is keyed on the host port: a new address changes neither', () => {
    const chains = (d: DesiredState) =>
      ['MOAT-INGRESS', 'MOAT-INPUT'].map((c) => specs(d.families.ipv4, c));
    const a = compile(hostOnlyGhost, inventory(container('ghost', '172.17.0.2', [{ host: 2368 }])));
    const b = compile(hostOnlyGhost, inventory(container('ghost', '172.30.0.3', [{ host: 2368 }])));
    const c = compile(hostOnlyGhost, inventory());
    expect(chains(b)).toEqual(chains(a));
    expect(chains(c)).toEqual(chains(a));
    expect(reach(c, 2368, { outInterface: 'br-0123456789ab' })).toEqual(HOST_ONLY);
  });

  test('allowed sources pass, per family; everyone else is dropped', () => {
    const p = policy([
      group('ghost', {
        ingress: [{ ports: [tcp(8000, 8100)], from: [v4('198.51.100.0/24'), v6('2001:db8::/32')] }],
      }),
    ]);
    const desired = compile(p, inventory());
    expect(reach(desired, 8050)).toEqual({ anyone: false, sources: ['198.51.100.0/24'] });
    expect(reach(desired, 8050, { family: 'ipv6' })).toEqual({
      anyone: false,
      sources: ['2001:db8::/32'],
    });
    expect(reach(desired, 8101)).toEqual(ANYONE);
  });

  test('from: any leaves the port alone; nothing is written for it', () => {
    const p = policy([
      group('ghost', { ingress: [{ ports: [tcp(2368)], from: [{ kind: 'any' }] }] }),
    ]);
    const desired = compile(p, inventory(container('ghost', '172.17.0.2', [{ host: 2368 }])));
    expect(desired.families.ipv4.chains).toEqual([]);
    expect(desired.families.ipv4.jumps).toEqual([]);
  });

  test('ports: all follows what the containers publish', () => {
    const p = policy([group('web', { ingress: [{ ports: 'all', from: [{ kind: 'host' }] }] })]);
    const desired = compile(
      p,
      inventory(container('web', '172.17.0.5', [{ host: 80 }, { host: 443 }])),
    );
    expect([80, 443, 8080].map((port) => reach(desired, port))).toEqual([
      HOST_ONLY,
      HOST_ONLY,
      ANYONE,
    ]);
  });

  test('a port published on loopback only is not reported, and a neighbour sending to 127.0.0.1 is dropped', () => {
    const api = container('api', '172.30.0.2', [], {
      ports: [{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
    });
    const desired = compile(
      hostOnlyGhost,
      inventory(api, container('ghost', '172.17.0.2', [{ host: 2368 }])),
    );
    expect(desired.warnings).toEqual([]);
    expect(specs(desired.families.ipv4, 'MOAT-INGRESS')[0]).toBe(
      '-m conntrack --ctorigdst 127.0.0.0/8 -j DROP',
    );
    expect(specs(desired.families.ipv6, 'MOAT-INGRESS')[0]).toBe(
      '-m conntrack --ctorigdst ::1/128 -j DROP',
    );
  });

  test("a port published on loopback only is the host's on the direct path too (Docker before 28 ACCEPTs it there)", () => {
    const api = container('api', '172.17.0.5', [], {
      ports: [{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
    });
    const desired = compile(
      hostOnlyGhost,
      inventory(api, container('ghost', '172.17.0.2', [{ host: 2368 }])),
    );
    const direct = { path: 'direct', outInterface: 'docker0', destination: '172.17.0.5' } as const;
    expect(reach(desired, 80, direct)).toEqual(HOST_ONLY);
    expect(reach(desired, 81, direct)).toEqual(ANYONE);
  });

  test('an empty policy wants nothing', () => {
    const desired = compile(policy([]), inventory(container('ghost', '172.17.0.2', [{ host: 1 }])));
    expect(desired.families.ipv4.chains).toEqual([]);
    expect(desired.families.ipv6.jumps).toEqual([]);
    expect(desired.ipsets).toEqual([]);
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
    for (const line of all) {
      expect(line).not.toContain('ACCEPT');
      expect(line).not.toContain('\n');
    }
    expect(reach(desired, 80)).toEqual({ anyone: false, sources: ['172.17.0.5/32'] });
  });
});

describe('compile: rules add up', () => {
  test("two rules naming the same port: either rule's sources may connect", () => {
    const p = policy([
      group('ghost', {
        ingress: [
          { ports: [tcp(2368)], from: [v4('198.51.100.0/25')] },
          { ports: [tcp(2368)], from: [v4('10.0.0.0/8')] },
        ],
      }),
    ]);
    expect(reach(compile(p, inventory()), 2368)).toEqual({
      anyone: false,
      sources: ['10.0.0.0/8', '198.51.100.0/25'],
    });
  });

  test('a range and a port inside it, in two groups, add up where they overlap', () => {
    const p = policy([
      group('app', { ingress: [{ ports: [tcp(8000, 8100)], from: [v4('203.0.113.0/24')] }] }),
      group('admin', { ingress: [{ ports: [tcp(8080)], from: [v4('10.8.0.0/16')] }] }),
    ]);
    const desired = compile(p, inventory());
    expect(reach(desired, 8080).sources).toEqual(['10.8.0.0/16', '203.0.113.0/24']);
    expect(reach(desired, 8079).sources).toEqual(['203.0.113.0/24']);
    expect(reach(desired, 8081).sources).toEqual(['203.0.113.0/24']);
    expect(reach(desired, 8080, { path: 'proxy' }).sources).toEqual([
      '10.8.0.0/16',
      '203.0.113.0/24',
    ]);
  });

  test('any in one rule makes the port open whatever other rules say', () => {
    const p = policy([
      group('a', { ingress: [{ ports: [tcp(443)], from: [v4('10.0.0.0/8')] }] }),
      group('b', { ingress: [{ ports: [tcp(443)], from: [{ kind: 'any' }] }] }),
    ]);
    expect(reach(compile(p, inventory()), 443)).toEqual(ANYONE);
  });
});

describe('compile: defaults that need no inventory', () => {
  const hostDefaults = policy([], { defaults: { ingress: 'host', egress: 'allow' } });

  test('defaults.ingress host holds a port published after the run, on any Docker bridge', () => {
    const desired = compile(hostDefaults, inventory());
    for (const out of ['docker0', 'br-0123456789ab', 'docker_gwbridge'])
      for (const family of ['ipv4', 'ipv6'] as const)
        expect(reach(desired, 9191, { outInterface: out, family })).toEqual(HOST_ONLY);
    // Someone else's DNAT to a non-Docker interface is not moat's business.
    expect(reach(desired, 9191, { outInterface: 'virbr0' })).toEqual(ANYONE);
    // Direct (routed) access to any container address on a Docker bridge is held too.
    expect(
      reach(desired, 80, {
        path: 'direct',
        outInterface: 'br-0123456789ab',
        destination: '172.20.0.9',
      }),
    ).toEqual(HOST_ONLY);
  });

  test('a rule naming a port still opens it under defaults.ingress host', () => {
    const p = policy(
      [group('web', { ingress: [{ ports: [tcp(443)], from: [{ kind: 'any' }] }] })],
      {
        defaults: { ingress: 'host', egress: 'allow' },
      },
    );
    const desired = compile(p, inventory());
    expect(reach(desired, 443)).toEqual(ANYONE);
    expect(reach(desired, 444)).toEqual(HOST_ONLY);
  });

  test("a host interface named like a Docker bridge but not Docker's is exempted by name", () => {
    const desired = compile(hostDefaults, inventory(), {
      ...DEFAULT_HOST_FACTS,
      interfaces: ['br-lan', 'br-0123456789ab', 'docker0', 'eth0'],
    });
    expect(reach(desired, 9191, { outInterface: 'br-lan' })).toEqual(ANYONE);
    expect(reach(desired, 9191, { outInterface: 'br-0123456789ab' })).toEqual(HOST_ONLY);
  });

  test('defaults.egress deny: a catch-all on the bridges, no address needed', () => {
    const p = policy([], { defaults: { ingress: 'allow', egress: 'deny' } });
    const desired = compile(p, inventory());
    const v4f = desired.families.ipv4;
    expect(specs(v4f, 'MOAT-FORWARD')).toEqual(
      expect.arrayContaining(['-i docker0 -j MOAT-EGRESS', '-i br-+ -j MOAT-EGRESS']),
    );
    expect(specs(v4f, 'MOAT-INPUT')).toContain('-i br-+ -j MOAT-EGRESS');
    expect(specs(v4f, 'MOAT-EGRESS')).toEqual(['-j DROP']);
    // IPv6 neighbour discovery still reaches the gateway, or no IPv6 packet would flow at all.
    expect(specs(desired.families.ipv6, 'MOAT-EGRESS').slice(0, 3)).toEqual([
      '-p ipv6-icmp -m icmp6 --icmpv6-type router-solicitation -j RETURN',
      '-p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j RETURN',
      '-p ipv6-icmp -m icmp6 --icmpv6-type neighbour-advertisement -j RETURN',
    ]);
  });
});

describe('compile: egress', () => {
  test('an allowlist ipset: deny first, allow, then drop the rest, keyed on each address', () => {
    const p = policy(
      [
        group('app', {
          egress: {
            default: 'deny',
            allow: [
              { to: [{ kind: 'ipset', set: 'allowed' }] },
              { to: [v4('10.0.5.0/24')], ports: [tcp(5432)] },
            ],
            deny: [{ to: [v4('10.0.0.0/8')] }],
          },
        }),
      ],
      { ipsets: new Map([managedIpset('allowed', 'hash:net', ['203.0.113.0/24'])]) },
    );
    const desired = compile(p, inventory(container('app', '172.17.0.9')));
    const f = desired.families.ipv4;
    const jump = specs(f, 'MOAT-EGRESS').find((s) => s.startsWith('-s 172.17.0.9/32')) ?? '';
    const chain = jump.split(' -g ')[1] ?? '';
    expect(chain).toMatch(/^MOAT-EGR-/);
    expect(specs(f, chain)).toEqual([
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

  test('under global deny, a group allowed everything is exempted by address', () => {
    const p = policy([group('app', { egress: { default: 'allow', allow: [], deny: [] } })], {
      defaults: { ingress: 'allow', egress: 'deny' },
    });
    const desired = compile(p, inventory(container('app', '172.17.0.9')));
    expect(specs(desired.families.ipv4, 'MOAT-EGRESS')).toEqual([
      '-s 172.17.0.9/32 -j RETURN',
      '-j DROP',
    ]);
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
});

describe('compile: gateway modes', () => {
  const routed = bridgeNetwork('routed', 'abcdef0123456789', {
    ipv6: true,
    gatewayMode: { ipv4: 'routed', ipv6: 'routed' },
  });
  const api = (ipv4: string) =>
    container('api', ipv4, [], {
      attachments: [{ network: 'routed', networkId: routed.id, ipv4, ipv6: 'fd00:30::2' }],
      ports: [{ hostIp: '0.0.0.0', containerPort: 80, protocol: 'tcp' }],
    });
  const direct = (family: Family, destination: string): Partial<PathPacket> => ({
    family,
    path: 'direct',
    outInterface: 'br-abcdef012345',
    destination,
  });

  test('a routed port is held at the container address, over IPv4 and IPv6', () => {
    const p = policy([group('api', { ingress: [{ ports: [tcp(80)], from: [{ kind: 'host' }] }] })]);
    const desired = compile(p, inventoryWith([routed], api('172.30.0.2')));
    expect(reach(desired, 80, direct('ipv4', '172.30.0.2'))).toEqual(HOST_ONLY);
    expect(reach(desired, 80, direct('ipv6', 'fd00:30::2'))).toEqual(HOST_ONLY);
    // Keyed on the bridge and the port: the container's next address is held too.
    expect(reach(desired, 80, direct('ipv4', '172.30.0.7'))).toEqual(HOST_ONLY);
    // What comes from a Docker bridge (a neighbour, another network) is not held here.
    expect(specs(desired.families.ipv4, 'MOAT-DIRECT')).toEqual([
      '-i docker0 -j RETURN',
      '-i br-+ -j RETURN',
      '-i docker_gwbridge -j RETURN',
      '-g MOAT-DIRECT-PORTS',
    ]);
    const pub = desired.publications.find((x) => x.container === 'api');
    expect(pub?.via).toBe('routed');
    expect(pub?.paths.map((x) => [x.family, x.path])).toEqual([
      ['ipv4', 'direct'],
      ['ipv6', 'direct'],
    ]);
  });

  test('a published port on a nat network is held at the container address too', () => {
    const desired = compile(
      hostOnlyGhost,
      inventory(container('ghost', '172.17.0.2', [{ host: 2368, container: 80 }])),
    );
    expect(
      reach(desired, 80, { path: 'direct', outInterface: 'docker0', destination: '172.17.0.2' }),
    ).toEqual(HOST_ONLY);
  });
});

describe("compile: the host's own services", () => {
  const sshd: Listener = {
    protocol: 'tcp',
    port: 22,
    address: '0.0.0.0',
    owners: [{ pid: 812, command: 'sshd' }],
  };
  const facts = (listeners: Listener[]) => ({ ...DEFAULT_HOST_FACTS, listeners });
  const ssh = (restrict?: true) =>
    policy([
      group('web', {
        ingress: [
          {
            ports: [tcp(22)],
            from: [v4('203.0.113.0/24')],
            ...(restrict === undefined ? {} : { restrictHostServices: restrict }),
          },
        ],
      }),
    ]);

  test('a rule that would restrict sshd is refused, naming it', () => {
    expect(() => compile(ssh(), inventory(), facts([sshd]))).toThrow(
      /22\/tcp is where sshd \(pid 812, tcp 0.0.0.0:22\) listens.*restrict_host_services/s,
    );
  });

  test('restrict_host_services: true is the deliberate way through', () => {
    const desired = compile(ssh(true), inventory(), facts([sshd]));
    expect(reach(desired, 22, { path: 'proxy' }).sources).toEqual(['203.0.113.0/24']);
  });

  test("docker-proxy on a port Docker publishes is Docker's own", () => {
    const proxy: Listener = { protocol: 'tcp', port: 2368, address: '::', owners: [] };
    const desired = compile(
      hostOnlyGhost,
      inventory(container('ghost', '172.17.0.2', [{ host: 2368 }])),
      facts([proxy]),
    );
    expect(reach(desired, 2368, { path: 'proxy', family: 'ipv6' })).toEqual(HOST_ONLY);
  });
});

describe('compile: pointing at the likely mistake', () => {
  test('a container port where the host port belongs names the host port', () => {
    const p = policy([group('web', { ingress: [{ ports: [tcp(80)], from: [{ kind: 'host' }] }] })]);
    const desired = compile(
      p,
      inventory(container('web', '172.17.0.5', [{ host: 8080, container: 80 }])),
    );
    const hint = desired.warnings.find((w) => w.code === 'container-port-named');
    expect(hint?.message).toContain('Did you mean 8080/tcp?');
    // The summary does not call 8080 protected: it is reachable from anyone.
    expect(reach(desired, 8080)).toEqual(ANYONE);
    expect(desired.publications.map((x) => [x.port, x.origins.length])).toEqual([[8080, 0]]);
  });

  test('a group name close to a running container suggests it', () => {
    const p = policy([
      group('dbb', { ingress: [{ ports: [tcp(5432)], from: [{ kind: 'host' }] }] }),
    ]);
    const desired = compile(p, inventory(container('db', '172.17.0.6')));
    expect(desired.warnings.find((w) => w.code === 'group-selects-nothing')?.message).toContain(
      'did you mean "db"?',
    );
  });

  test('IPv4-only sources for a port Docker publishes on :: too say that IPv6 is refused', () => {
    const p = policy([
      group('ghost', { ingress: [{ ports: [tcp(2368)], from: [v4('0.0.0.0/0')] }] }),
    ]);
    const ghost = container('ghost', '172.17.0.2', [], {
      ports: [
        { hostIp: '0.0.0.0', hostPort: 2368, containerPort: 2368, protocol: 'tcp' },
        { hostIp: '::', hostPort: 2368, containerPort: 2368, protocol: 'tcp' },
      ],
    });
    const desired = compile(p, inventory(ghost));
    expect(desired.warnings.map((w) => w.code)).toContain('one-family-sources');
  });

  test("a group's egress keyed on addresses under a global allow: the plan notes the window on recreation", () => {
    const denyList = { default: 'allow', allow: [], deny: [{ to: [v4('10.0.0.0/8')] }] } as const;
    const denyAll = { default: 'deny', allow: [{ to: [v4('192.0.2.0/24')] }], deny: [] } as const;
    const allowOnly = {
      default: 'allow',
      allow: [{ to: [v4('192.0.2.0/24')] }],
      deny: [],
    } as const;
    const groups = [
      group('app', { egress: denyList }),
      group('web', { egress: denyAll }),
      group('free', { egress: allowOnly }),
    ];
    const notes = (p: Parameters<typeof compile>[0]) =>
      compile(p, inventory()).warnings.filter((w) => w.code === 'egress-window');
    const [note] = notes(policy(groups));
    expect(note?.level).toBe('note');
    expect(note?.message).toMatch(
      /^the egress sections of "app", "web" are keyed on container addresses/,
    );
    expect(note?.message).toContain('Set defaults.egress: deny');
    // Under a global deny a recreated container is held closed: nothing to note.
    expect(notes(policy(groups, { defaults: { ingress: 'allow', egress: 'deny' } }))).toEqual([]);
    // A section that restricts nothing has no window.
    expect(notes(policy([groups[2] ?? group('x')]))).toEqual([]);
  });

  test('any beside other sources is called out', () => {
    const p = policy([
      group('ghost', {
        ingress: [{ ports: [tcp(2368)], from: [{ kind: 'any' }, v4('10.0.0.0/8')] }],
      }),
    ]);
    expect(compile(p, inventory()).warnings.map((w) => w.code)).toContain('any-beside-others');
  });

  test('a published port no rule names is a warning under defaults.ingress allow', () => {
    const desired = compile(
      policy([]),
      inventory(container('api', '172.30.0.2', [{ host: 8080 }])),
    );
    expect(desired.warnings.map((w) => w.code)).toEqual(['uncovered-port']);
    expect(desired.warnings[0]?.message).toContain('api publishes 8080/tcp');
  });
});
