/**
 * The packet-path evaluator on small hand-written rulesets: iptables' chain semantics (jump,
 * goto, RETURN, policies), the matches it models, the hooks a packet crosses, and "unknown"
 * with the rule named for what it does not model.
 */
import { describe, expect, test } from '@jest/globals';
import type { ProbeOutcome, World } from '../../src/explain/model.js';
import { explain, parseSource, parseTarget } from '../../src/explain/query.js';
import { filter, world } from '../support/explain-world.js';

function outcome(w: World, from: string, to: string): ProbeOutcome {
  const answer = explain(w, parseSource(from), parseTarget(to)).answers[0];
  const probe = answer?.probes[0];
  if (probe === undefined) throw new Error(`no probe: ${answer?.note ?? 'no answer'}`);
  return probe.outcome;
}

const verdict = (w: World, from: string, to: string): string => outcome(w, from, to).verdict;

/** A forward-only ruleset: the client reaches web's address directly (routed). */
function forward(chains: readonly string[], rules: readonly string[]): World {
  return world({
    ipv4: filter(['INPUT ACCEPT', 'FORWARD ACCEPT', 'OUTPUT ACCEPT', ...chains], rules),
  });
}

const DIRECT = '192.0.2.2:80/tcp';
const CLIENT = '198.51.100.7';

describe('chains', () => {
  test('an empty ruleset lets a routed connection through, and its trail says how', () => {
    const o = outcome(forward([], []), CLIENT, DIRECT);
    expect(o.verdict).toBe('reachable');
    expect(o.reason).toBe('delivered to container web at 192.0.2.2:80');
    expect(o.trail).toContainEqual({
      kind: 'note',
      text: 'routing: 192.0.2.2 goes out of bridge1: FORWARD',
    });
  });

  test('the policy of a built-in chain decides what no rule does', () => {
    const o = outcome(forward(['FORWARD DROP'].slice(1), []), CLIENT, DIRECT);
    expect(o.verdict).toBe('reachable');
    const dropped = world({ ipv4: filter(['INPUT ACCEPT', 'FORWARD DROP', 'OUTPUT ACCEPT'], []) });
    expect(outcome(dropped, CLIENT, DIRECT)).toMatchObject({
      verdict: 'blocked',
      reason: 'dropped by the policy of filter FORWARD',
    });
  });

  test('a user chain falls through back to its caller; RETURN does too', () => {
    const w = forward(
      ['A', 'B'],
      [
        '-A FORWARD -j A',
        '-A FORWARD -j DROP',
        '-A A -j B',
        '-A A -j RETURN',
        '-A B -s 10.0.0.0/8 -j ACCEPT',
      ],
    );
    expect(outcome(w, CLIENT, DIRECT).reason).toBe('dropped by filter FORWARD rule 2');
  });

  test('RETURN in a chain reached by goto returns to where the goto-ing chain was jumped from', () => {
    const w = forward(
      ['A', 'B'],
      ['-A FORWARD -j A', '-A FORWARD -j DROP', '-A A -g B', '-A A -j ACCEPT', '-A B -j RETURN'],
    );
    // B's RETURN skips the rest of A (rule 2, ACCEPT): back in FORWARD at rule 2, DROP.
    expect(outcome(w, CLIENT, DIRECT).reason).toBe('dropped by filter FORWARD rule 2');
  });

  test('a goto from the built-in chain ends in its policy', () => {
    const w = world({
      ipv4: filter(
        ['INPUT ACCEPT', 'FORWARD DROP', 'OUTPUT ACCEPT', 'B'],
        ['-A FORWARD -g B', '-A FORWARD -j ACCEPT', '-A B -s 10.0.0.0/8 -j ACCEPT'],
      ),
    });
    expect(outcome(w, CLIENT, DIRECT).reason).toBe('dropped by the policy of filter FORWARD');
  });

  test('interface wildcards and negations', () => {
    const w = forward([], ['-A FORWARD -i eth+ -o br+ -j DROP']);
    expect(verdict(w, CLIENT, DIRECT)).toBe('blocked');
    expect(verdict(forward([], ['-A FORWARD ! -i eth0 -o bridge1 -j DROP']), CLIENT, DIRECT)).toBe(
      'reachable',
    );
    expect(verdict(forward([], ['-A FORWARD -o bridge -j DROP']), CLIENT, DIRECT)).toBe(
      'reachable',
    );
  });

  test('ports, multiport and source blocks', () => {
    expect(
      verdict(
        forward([], ['-A FORWARD -p tcp -m multiport --dports 22,70:90 -j DROP']),
        CLIENT,
        DIRECT,
      ),
    ).toBe('blocked');
    expect(verdict(forward([], ['-A FORWARD -p udp --dport 80 -j DROP']), CLIENT, DIRECT)).toBe(
      'reachable',
    );
    expect(verdict(forward([], ['-A FORWARD -s 198.51.100.0/25 -j DROP']), CLIENT, DIRECT)).toBe(
      'blocked',
    );
    expect(
      verdict(forward([], ['-A FORWARD -i eth0 ! -s 198.51.100.0/25 -j DROP']), CLIENT, DIRECT),
    ).toBe('reachable');
    // Unless told the direction, a rule meets the reply too: its source is the container.
    expect(verdict(forward([], ['-A FORWARD ! -s 198.51.100.0/25 -j DROP']), CLIENT, DIRECT)).toBe(
      'blocked',
    );
  });

  test('the reply must come back: a FORWARD that only lets new connections in blocks them', () => {
    const w = world({
      ipv4: filter(
        ['INPUT ACCEPT', 'FORWARD DROP', 'OUTPUT ACCEPT'],
        ['-A FORWARD -o bridge1 -m conntrack --ctstate NEW -j ACCEPT'],
      ),
    });
    const o = outcome(w, CLIENT, DIRECT);
    expect(o.verdict).toBe('blocked');
    expect(o.reason).toMatch(/^the reply is dropped by the policy of filter FORWARD/);
  });
});

describe('NAT and conntrack', () => {
  const NAT = filter(
    ['PREROUTING ACCEPT', 'INPUT ACCEPT', 'OUTPUT ACCEPT', 'POSTROUTING ACCEPT', 'DOCKER'],
    [
      '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
      '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER',
      '-A DOCKER -i bridge1 -j RETURN',
      '-A DOCKER ! -i bridge1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.2:80',
    ],
    'nat',
  );
  const withFilter = (rules: readonly string[]) =>
    world({
      ipv4: NAT + filter(['INPUT ACCEPT', 'FORWARD ACCEPT', 'OUTPUT ACCEPT', 'MOAT-SRC'], rules),
    });

  test('a published port is DNATed to the container', () => {
    const o = outcome(withFilter([]), CLIENT, 'web:8080/tcp');
    expect(o.verdict).toBe('reachable');
    expect(o.trail.some((s) => s.kind === 'rule' && s.effect === 'DNAT to 192.0.2.2:80')).toBe(
      true,
    );
  });

  test("moat's routed rule: --ctstate DNAT and --ctorigdstport match the published port", () => {
    const w = withFilter([
      '-A FORWARD -p tcp -m conntrack --ctstate DNAT --ctdir ORIGINAL --ctorigdstport 8080 -j MOAT-SRC',
      '-A MOAT-SRC -s 203.0.113.0/24 -j RETURN',
      '-A MOAT-SRC -j DROP',
    ]);
    expect(verdict(w, CLIENT, 'web:8080/tcp')).toBe('blocked');
    expect(verdict(w, '203.0.113.9', 'web:8080/tcp')).toBe('reachable');
    // Direct (routed) access is not DNATed: the rule does not see it.
    expect(verdict(w, CLIENT, DIRECT)).toBe('reachable');
  });

  test('! --ctstate DNAT tells direct access from published', () => {
    const w = withFilter(['-A FORWARD -o bridge1 -m conntrack ! --ctstate DNAT -j DROP']);
    expect(verdict(w, CLIENT, DIRECT)).toBe('blocked');
    expect(verdict(w, CLIENT, 'web:8080/tcp')).toBe('reachable');
  });

  test('--ctorigdst names the address the client connected to', () => {
    const w = withFilter(['-A FORWARD -m conntrack --ctorigdst 198.51.100.1 -j DROP']);
    expect(verdict(w, CLIENT, 'web:8080/tcp')).toBe('blocked');
    expect(verdict(w, CLIENT, DIRECT)).toBe('reachable');
  });

  test('the host reaches a published port through nat OUTPUT, never crossing FORWARD', () => {
    const w = withFilter(['-A FORWARD -j DROP']);
    const o = outcome(w, 'host', 'web:8080/tcp');
    expect(o.verdict).toBe('reachable');
    expect(o.trail.some((s) => s.kind === 'rule' && s.rule.chain === 'FORWARD')).toBe(false);
  });

  test('a raw PREROUTING DROP stops direct access before NAT (Docker 28)', () => {
    const w = world({
      ipv4:
        filter(
          ['PREROUTING ACCEPT', 'OUTPUT ACCEPT'],
          ['-A PREROUTING -d 192.0.2.2/32 ! -i bridge1 -j DROP'],
          'raw',
        ) + NAT,
    });
    expect(outcome(w, CLIENT, DIRECT).reason).toBe('dropped by raw PREROUTING rule 1');
    expect(verdict(w, CLIENT, 'web:8080/tcp')).toBe('reachable');
  });

  test('CT --notrack exempts a connection from NAT', () => {
    const w = world({
      ipv4:
        filter(
          ['PREROUTING ACCEPT', 'OUTPUT ACCEPT'],
          ['-A PREROUTING -p tcp --dport 8080 -j CT --notrack'],
          'raw',
        ) + NAT,
    });
    expect(outcome(w, CLIENT, 'web:8080/tcp').reason).toBe(
      'nothing listens on 198.51.100.1:8080/tcp: connection refused',
    );
  });

  test('marks set in mangle are seen in filter', () => {
    const w = world({
      ipv4:
        filter(
          [
            'PREROUTING ACCEPT',
            'INPUT ACCEPT',
            'FORWARD ACCEPT',
            'OUTPUT ACCEPT',
            'POSTROUTING ACCEPT',
          ],
          ['-A PREROUTING -s 198.51.100.0/24 -j MARK --set-xmark 0x4/0xff'],
          'mangle',
        ) +
        filter(
          ['INPUT ACCEPT', 'FORWARD ACCEPT', 'OUTPUT ACCEPT'],
          ['-A FORWARD -m mark --mark 0x4/0x4 -j DROP'],
        ),
    });
    expect(verdict(w, CLIENT, DIRECT)).toBe('blocked');
    expect(verdict(w, '203.0.113.9', DIRECT)).toBe('reachable');
  });
});

describe('sets and address types', () => {
  const SETS = [
    'create office hash:net family inet hashsize 1024 maxelem 65536',
    'add office 198.51.100.0/24',
    'add office 198.51.100.7 nomatch',
    'create admins hash:ip family inet hashsize 1024 maxelem 65536',
    'add admins 203.0.113.9',
    '',
  ].join('\n');
  const w = world({
    ipsets: SETS,
    ipv4: filter(
      ['INPUT ACCEPT', 'FORWARD DROP', 'OUTPUT ACCEPT'],
      [
        '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-A FORWARD -m set --match-set office src -j ACCEPT',
        '-A FORWARD -m set --match-set admins src -j ACCEPT',
      ],
    ),
  });

  test('hash:net with a nomatch entry, hash:ip', () => {
    expect(verdict(w, '198.51.100.8', DIRECT)).toBe('reachable');
    expect(verdict(w, CLIENT, DIRECT)).toBe('blocked');
    expect(verdict(w, '203.0.113.9', DIRECT)).toBe('reachable');
    expect(verdict(w, '203.0.113.10', DIRECT)).toBe('blocked');
  });

  test('a block of sources is probed once per region the rules cut it into', () => {
    const answer = explain(w, parseSource('198.51.100.0/24'), parseTarget(DIRECT)).answers[0];
    expect(answer?.verdict).toBe('partly');
    expect(answer?.probes.map((p) => [p.from.address, p.outcome.verdict])).toEqual([
      ['198.51.100.3', 'reachable'],
      ['198.51.100.7', 'blocked'],
    ]);
  });

  test('addrtype LOCAL is an address of the host', () => {
    const local = world({
      ipv4: filter(
        ['INPUT ACCEPT', 'FORWARD ACCEPT', 'OUTPUT ACCEPT'],
        ['-A INPUT -m addrtype --dst-type LOCAL -p tcp --dport 22 -j DROP'],
      ),
      sockets: [{ protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd', pid: 1 }],
    });
    expect(outcome(local, CLIENT, '198.51.100.1:22/tcp').reason).toBe(
      'dropped by filter INPUT rule 1',
    );
  });
});

describe('the host itself', () => {
  const sockets = [
    { protocol: 'tcp' as const, address: '0.0.0.0', port: 2368, process: 'docker-proxy', pid: 10 },
    { protocol: 'tcp' as const, address: '::', port: 2368, process: 'docker-proxy', pid: 11 },
    { protocol: 'tcp' as const, address: '*', port: 22, process: 'sshd', pid: 1 },
  ];
  const proxies = [
    { pid: 10, protocol: 'tcp' as const, containerIp: '172.17.0.2', containerPort: 2368 },
    { pid: 11, protocol: 'tcp' as const, containerIp: '172.17.0.2', containerPort: 2368 },
  ];

  test('docker-proxy accepts, then connects to the container from the host', () => {
    const o = outcome(world({ sockets, proxies }), '2001:db8:100::7', 'ghost:2368/tcp');
    expect(o).toMatchObject({
      verdict: 'reachable',
      reason: 'through docker-proxy (pid 11): delivered to container ghost at 172.17.0.2:2368',
    });
  });

  test("the proxy's own connection leaves through OUTPUT", () => {
    const w = world({
      sockets,
      proxies,
      ipv4: filter(
        ['INPUT ACCEPT', 'FORWARD ACCEPT', 'OUTPUT ACCEPT'],
        ['-A OUTPUT -o docker0 -j REJECT'],
      ),
    });
    expect(outcome(w, CLIENT, 'ghost:2368/tcp').reason).toBe(
      "docker-proxy's own connection: rejected by filter OUTPUT rule 1",
    );
  });

  test('a port nothing listens on refuses; a dual-stack socket answers both families', () => {
    expect(outcome(world({ sockets }), CLIENT, '198.51.100.1:23/tcp').reason).toBe(
      'nothing listens on 198.51.100.1:23/tcp: connection refused',
    );
    expect(outcome(world({ sockets }), '2001:db8:100::7', '[2001:db8:100::1]:22/tcp').reason).toBe(
      'delivered to sshd (pid 1) listening on [2001:db8:100::1]:22',
    );
  });

  test('forwarding off stops routed traffic', () => {
    expect(outcome(world({ sysctl: { 'net.ipv4.ip_forward': '0' } }), CLIENT, DIRECT).reason).toBe(
      'the host does not forward ipv4 packets (net.ipv4.ip_forward = 0)',
    );
  });
});

describe('containers as sources', () => {
  test('a container reaches the outside through FORWARD in from its bridge', () => {
    const w = forward([], ['-A FORWARD -i bridge1 -d 203.0.113.0/24 -j DROP']);
    expect(verdict(w, 'container:web', '203.0.113.10:443/tcp')).toBe('blocked');
    expect(verdict(w, 'container:web', '198.51.100.9:443/tcp')).toBe('reachable');
  });

  test('a neighbour on the same bridge is switched: iptables sees it only with br_netfilter', () => {
    const inventory = {
      networks: world().inventory.networks,
      containers: [
        ...world().inventory.containers,
        {
          id: 'c2',
          name: 'db',
          labels: {},
          state: 'running',
          ports: [],
          attachments: [{ network: 'usernet', networkId: 'n1', ipv4: '192.0.2.3' }],
        },
      ],
    };
    const rules = filter(
      ['INPUT ACCEPT', 'FORWARD ACCEPT', 'OUTPUT ACCEPT'],
      ['-A FORWARD -i bridge1 -o bridge1 -j DROP'],
    );
    expect(verdict(world({ inventory, ipv4: rules }), 'container:db', DIRECT)).toBe('blocked');
    const off = world({
      inventory,
      ipv4: rules,
      sysctl: { 'net.bridge.bridge-nf-call-iptables': '0' },
    });
    expect(outcome(off, 'container:db', DIRECT).reason).toBe(
      'delivered to container web at 192.0.2.2:80',
    );
  });

  test('IPv6: a container whose neighbour advertisements are dropped cannot be reached', () => {
    const w = world({
      ipv6: filter(
        ['INPUT ACCEPT', 'FORWARD ACCEPT', 'OUTPUT ACCEPT', 'EGRESS'],
        [
          '-A INPUT -m conntrack --ctdir REPLY -j RETURN',
          '-A INPUT -s fd00:db8:1::2/128 -j EGRESS',
          '-A EGRESS -d 2001:db8:100::/64 -j RETURN',
          '-A EGRESS -j DROP',
        ],
      ),
    });
    const o = outcome(w, '2001:db8:100::7', '[fd00:db8:1::2]:80/tcp');
    expect(o.verdict).toBe('blocked');
    expect(o.reason).toBe(
      "IPv6 neighbour discovery fails: fd00:db8:1::2's advertisement is dropped by filter EGRESS rule 2",
    );
    // The host asked from its link-local address: the packet's source is not on bridge1.
    expect(o.trail).toContainEqual({
      kind: 'note',
      text: 'IPv6 neighbour discovery: the host (fe80::1) asks for fd00:db8:1::2 on bridge1',
    });
    const exempt = world({
      ipv6: filter(
        ['INPUT ACCEPT', 'FORWARD ACCEPT', 'OUTPUT ACCEPT', 'EGRESS'],
        [
          '-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT',
          '-A INPUT -s fd00:db8:1::2/128 -j EGRESS',
          '-A EGRESS -j DROP',
        ],
      ),
    });
    expect(verdict(exempt, '2001:db8:100::7', '[fd00:db8:1::2]:80/tcp')).toBe('reachable');
  });

  test('IPv6: when another exchange could fill the neighbour cache, the outcome depends on history', () => {
    // Only advertisements to the link-local address are dropped: the host's own connection
    // (from its global address on bridge1) would teach it the neighbour.
    const w = world({
      ipv6: filter(
        ['INPUT ACCEPT', 'FORWARD ACCEPT', 'OUTPUT ACCEPT'],
        ['-A INPUT -s fd00:db8:1::2/128 -d fe80::/10 -j DROP'],
      ),
    });
    const o = outcome(w, '2001:db8:100::7', '[fd00:db8:1::2]:80/tcp');
    expect(o.verdict).toBe('unknown');
    expect(o.reason).toMatch(
      /would fill the neighbour cache, so the outcome depends on earlier traffic$/,
    );
    expect(verdict(w, 'host', '[fd00:db8:1::2]:80/tcp')).toBe('reachable');
  });
});

describe('what is not modelled', () => {
  test('a match that cannot change the verdict is named, and the verdict stands', () => {
    const w = forward(
      [],
      [
        '-A FORWARD -m limit --limit 5/min -j LOG',
        '-A FORWARD -p tcp -m recent --rcheck -j DROP',
        '-A FORWARD -j DROP',
      ],
    );
    const o = outcome(w, CLIENT, DIRECT);
    expect(o.verdict).toBe('blocked');
    expect(o.unmodelled).toEqual([
      expect.objectContaining({
        why: 'match -m recent is not modelled',
        rule: expect.objectContaining({ position: 2 }),
      }),
    ]);
  });

  test('a match that decides makes the answer unknown, naming the rule', () => {
    const o = outcome(
      forward([], ['-A FORWARD -m physdev --physdev-in veth1 -j DROP']),
      CLIENT,
      DIRECT,
    );
    expect(o.verdict).toBe('unknown');
    expect(o.unmodelled[0]).toMatchObject({
      why: 'match -m physdev is not modelled',
      rule: { chain: 'FORWARD', position: 1 },
    });
  });

  test('a target that decides is unknown', () => {
    const o = outcome(forward([], ['-A FORWARD -j NFQUEUE --queue-num 1']), CLIENT, DIRECT);
    expect(o).toMatchObject({ verdict: 'unknown', reason: 'target NFQUEUE is not modelled' });
  });

  test("the client's source port is not known", () => {
    expect(
      verdict(forward([], ['-A FORWARD -p tcp --sport 1024:65535 -j DROP']), CLIENT, DIRECT),
    ).toBe('blocked');
    expect(verdict(forward([], ['-A FORWARD -p tcp --sport 53 -j DROP']), CLIENT, DIRECT)).toBe(
      'reachable',
    );
    expect(
      verdict(forward([], ['-A FORWARD -p tcp --sport 40000:50000 -j DROP']), CLIENT, DIRECT),
    ).toBe('unknown');
  });

  test("Docker's nftables backend makes every answer unknown", () => {
    const o = outcome(world({ firewallBackend: 'nftables' }), CLIENT, DIRECT);
    expect(o.verdict).toBe('unknown');
    expect(o.reason).toMatch(/^iptables alone: reachable .*docker-bridges/);
  });

  test("nftables tables iptables does not show are named; iptables-nft's own are not", () => {
    const own = world({ nftTables: ['ip filter', 'ip nat', 'ip6 raw'] });
    expect(verdict(own, CLIENT, DIRECT)).toBe('reachable');
    const foreign = outcome(world({ nftTables: ['ip filter', 'inet firewalld'] }), CLIENT, DIRECT);
    expect(foreign.verdict).toBe('unknown');
    expect(foreign.unmodelled[0]?.why).toBe(
      'nftables tables that iptables does not show also filter packets: inet firewalld (not modelled)',
    );
  });

  test('an unnamed owner of a listening socket (moat not root) is not guessed', () => {
    const w = world({ sockets: [{ protocol: 'tcp', address: '0.0.0.0', port: 2368 }] });
    expect(outcome(w, CLIENT, '198.51.100.1:2368/tcp').reason).toBe(
      'which process listens on 198.51.100.1:2368 is not known (ss shows owners to root only)',
    );
  });

  test('facts a snapshot did not capture make answers that need them unknown', () => {
    expect(outcome(world({ noSysctl: true }), CLIENT, DIRECT).reason).toBe(
      'whether the host forwards ipv4 packets (net.ipv4.ip_forward) was not captured',
    );
  });
});
