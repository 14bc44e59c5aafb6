/**
 * Drops per policy rule from the kernel's counters (parse-counters → dropReport), in words and
 * as metrics; and a logged line read back to the policy rule that dropped it.
 */
import { describe, expect, test } from '@jest/globals';
import { compile } from '../../src/compile/compile.js';
import type { DesiredState } from '../../src/compile/model.js';
import { parseCounters, type RuleCounters } from '../../src/netfilter/parse-counters.js';
import {
  dropLines,
  dropOrigins,
  explainDrop,
  packetWords,
  parseLoggedDrop,
  ruleTitle,
} from '../../src/plan/drop-words.js';
import { dropChains, dropReport } from '../../src/plan/drops.js';
import type { Policy } from '../../src/policy/model.js';
import { renderMetrics } from '../../src/state/metrics.js';
import { container, group, inventory, policy, tcp } from '../support/builders.js';

const v4 = (cidr: string) => ({ kind: 'cidr', block: { family: 'ipv4', cidr } }) as const;

const p: Policy = policy(
  [
    group('ghost', { ingress: [{ ports: [tcp(2368)], from: [{ kind: 'host' }] }] }),
    group('api', {
      ingress: [
        { ports: [tcp(8080)], from: [v4('203.0.113.0/24')] },
        { ports: [tcp(8080)], from: [v4('198.51.100.0/24')] },
      ],
      egress: { default: 'deny', allow: [], deny: [{ to: [v4('10.0.0.0/8')] }] },
    }),
  ],
  { defaults: { ingress: 'host', egress: 'allow' } },
);
const desired = compile(
  p,
  inventory(container('ghost', '172.17.0.2', [{ host: 2368 }]), container('api', '172.17.0.3')),
);

/** The live counters of the desired rules, as `iptables -S -v` would print them. */
function listing(
  d: DesiredState,
  family: 'ipv4' | 'ipv6',
  counts: (spec: string, chain: string) => number,
): string {
  return d.families[family].chains
    .flatMap((c) => [
      `-N ${c.name}`,
      ...c.rules.map((r) => {
        const n = counts(r.spec, c.name);
        const [head, target] = r.line.split(/ (?=-[jg] )/);
        return `-A ${c.name} ${head} -c ${n} ${n * 60} ${target}`;
      }),
    ])
    .join('\n');
}

function countersOf(text: string): RuleCounters[] {
  return parseCounters(text);
}

describe('parseCounters', () => {
  test('reads `iptables -S -v` (nft and legacy print it alike) and `iptables-save -c`', () => {
    const listed = [
      '-N MOAT-X',
      '-A MOAT-X -p tcp -m conntrack --ctorigdstport 2368 -m comment --comment "moat:abc123def456" -c 12 720 -j DROP',
      '-A MOAT-X -m comment --comment "moat:aaa" -m conntrack --ctstate NEW -m limit --limit 5/min -c 3 180 -j NFLOG --nflog-prefix "moat-drop abc123def456 -c 9 9"',
      '-A MOAT-X -s 192.0.2.1/32 -c 5 5 -j DROP',
    ].join('\n');
    expect(parseCounters(listed)).toEqual([
      { chain: 'MOAT-X', id: 'abc123def456', target: 'DROP', packets: 12, bytes: 720 },
      { chain: 'MOAT-X', id: 'aaa', target: 'NFLOG', packets: 3, bytes: 180 },
    ]);
    const saved = [
      '*filter',
      ':MOAT-X - [0:0]',
      ':OTHER - [0:0]',
      '[7:420] -A MOAT-X -m comment --comment moat:abc123def456 -j DROP',
      '[1:1] -A OTHER -m comment --comment "moat:bbb" -j DROP',
      'COMMIT',
    ].join('\n');
    expect(parseCounters(saved, new Set(['MOAT-X']))).toEqual([
      { chain: 'MOAT-X', id: 'abc123def456', target: 'DROP', packets: 7, bytes: 420 },
    ]);
    expect(() => parseCounters('-A MOAT-X -m comment --comment "moat:abc" -j DROP')).toThrow(
      /no counters/,
    );
  });
});

describe('dropReport', () => {
  test('each DROP counts under the policy rules that made it; the totals count each packet once', () => {
    const ghostDrop = (spec: string, chain: string) =>
      spec.includes('2368 -j DROP') && chain === 'MOAT-INGRESS' ? 4 : 0;
    const srcDrop = (spec: string, chain: string) =>
      chain.startsWith('MOAT-SRC-') && spec === '-j DROP' ? 2 : 0;
    const report = dropReport(desired, {
      ipv4: countersOf(listing(desired, 'ipv4', (s, c) => ghostDrop(s, c) + srcDrop(s, c))),
      ipv6: countersOf(listing(desired, 'ipv6', () => 0)),
    });
    const counted = report.rules.filter((r) => r.packets > 0);
    expect(counted.map((r) => [r.rule, r.family, r.packets, r.bytes])).toEqual([
      ['containers.api.ingress[0]', 'ipv4', 2, 120],
      ['containers.api.ingress[1]', 'ipv4', 2, 120],
      ['containers.ghost.ingress[0]', 'ipv4', 4, 240],
    ]);
    expect(report.totals).toEqual({
      ipv4: { packets: 6, bytes: 360 },
      ipv6: { packets: 0, bytes: 0 },
    });
    // Every rule that can drop has a row in each family, counted or not.
    const rules = new Set(report.rules.map((r) => `${r.rule} ${r.family}`));
    for (const r of ['defaults.ingress', 'published-on-loopback', 'containers.ghost.ingress[0]'])
      expect([rules.has(`${r} ipv4`), rules.has(`${r} ipv6`)]).toEqual([true, true]);
    // api has no IPv6 address: its egress chain exists in IPv4 only.
    for (const r of ['containers.api.egress.deny[0]', 'containers.api.egress.default'])
      expect([rules.has(`${r} ipv4`), rules.has(`${r} ipv6`)]).toEqual([true, false]);
    expect(report.rules.find((r) => r.rule === 'defaults.ingress')?.group).toBe('(defaults)');
    expect(report.rules.find((r) => r.rule === 'containers.api.egress.deny[0]')).toMatchObject({
      group: 'api',
      direction: 'egress',
    });
    expect(dropChains(desired, 'ipv4')).toContain('MOAT-INGRESS');
  });

  test('a live DROP the policy no longer makes is counted apart, and in the totals', () => {
    const report = dropReport(desired, {
      ipv4: [
        { chain: 'MOAT-SRC-0000000000', id: 'feedfacefeed', target: 'DROP', packets: 9, bytes: 9 },
      ],
      ipv6: [],
    });
    expect(report.unattributed.ipv4).toEqual({ packets: 9, bytes: 9 });
    expect(report.totals.ipv4).toEqual({ packets: 9, bytes: 9 });
    expect(report.rules.every((r) => r.packets === 0)).toBe(true);
  });

  test('in words, and as Prometheus counters', () => {
    const report = dropReport(desired, {
      ipv4: countersOf(
        listing(desired, 'ipv4', (s, c) =>
          c === 'MOAT-INGRESS' && s.includes('2368 -j DROP') ? 1 : 0,
        ),
      ),
      ipv6: countersOf(listing(desired, 'ipv6', () => 0)),
    });
    const locate = (path: readonly (string | number)[]) => `firewall.yaml:${path.length}:1`;
    expect(dropLines(report, locate)).toEqual([
      'IPv4 1 packet (60 bytes) since the rules were written',
      '  ghost ingress rule 1 (firewall.yaml:4:1): IPv4 1 packet (60 bytes)',
    ]);
    const zero = dropReport(desired, { ipv4: [], ipv6: [] });
    expect(dropLines(zero, locate)).toEqual(['none counted since the rules were written']);
    const text = renderMetrics({ runs: [] }, { version: '0', backend: 'nft' }, { drops: report });
    expect(text).toContain('# TYPE moat_dropped_packets_total counter');
    expect(text).toContain(
      'moat_dropped_packets_total{group="ghost",direction="ingress",rule="containers.ghost.ingress[0]",family="ipv4"} 1',
    );
    expect(text).toContain(
      'moat_dropped_bytes_total{group="(defaults)",direction="ingress",rule="defaults.ingress",family="ipv6"} 0',
    );
  });
});

describe('a logged drop, read back', () => {
  const origins = dropOrigins(desired);
  const ghostDrop = desired.families.ipv4.chains
    .find((c) => c.name === 'MOAT-INGRESS')
    ?.rules.find((r) => r.spec.includes('2368 -j DROP'));
  const locate = (path: readonly (string | number)[]) => `firewall.yaml:${path.length}:9`;

  test('a ulogd2 LOGEMU line', () => {
    const line = `Dec  1 13:38:59 vm moat-drop ${ghostDrop?.id ?? ''} ghost.ingress[0] IN=vd0 OUT=docker0 MAC=00:00 SRC=198.51.100.2 DST=172.17.0.2 LEN=60 TOS=00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=2368 SEQ=1 ACK=0 WINDOW=64240 SYN URGP=0 MARK=0x0 `;
    const drop = parseLoggedDrop(line);
    expect(drop?.packet).toEqual({
      time: 'Dec  1 13:38:59',
      protocol: 'TCP',
      source: '198.51.100.2',
      destination: '172.17.0.2',
      sourcePort: '40000',
      destinationPort: '2368',
      in: 'vd0',
      out: 'docker0',
      family: 'ipv4',
    });
    if (drop === undefined) throw new Error('not parsed');
    expect(packetWords(drop.packet)).toBe(
      'TCP 198.51.100.2:40000 -> 172.17.0.2:2368 (in vd0, out docker0)',
    );
    expect(explainDrop(drop, p, origins, locate).words).toBe(
      'dropped by ghost ingress rule 1 (firewall.yaml:4:9): from [host] only',
    );
  });

  test('a ulogd2 JSON line, an IPv6 one, rules that add up, an egress rule, an unknown id', () => {
    const srcDrop = desired.families.ipv6.chains
      .find((c) => c.name === 'MOAT-INPUT')
      ?.rules.find((r) => r.spec.includes('8080') && r.spec.endsWith('-j DROP'));
    const json = JSON.stringify({
      timestamp: '2026-12-01T13:39:00',
      'oob.prefix': `moat-drop ${srcDrop?.id ?? ''} api.ingress[0]+1`,
      'ip.protocol': 6,
      src_ip: '2001:db8:100::2',
      dest_ip: '2001:db8:100::1',
      src_port: 41000,
      dest_port: 8080,
      'oob.in': 'vd0',
    });
    const drop = parseLoggedDrop(json);
    if (drop === undefined) throw new Error('not parsed');
    expect(packetWords(drop.packet)).toBe(
      'TCP [2001:db8:100::2]:41000 -> [2001:db8:100::1]:8080 (in vd0)',
    );
    expect(explainDrop(drop, p, origins, locate).words).toBe(
      'dropped by api ingress rule 1 (firewall.yaml:4:9) and api ingress rule 2 (firewall.yaml:4:9): from [host, 203.0.113.0/24, 198.51.100.0/24] only',
    );
    const deny = desired.families.ipv4.chains
      .flatMap((c) => c.rules)
      .find((r) => r.spec === '-d 10.0.0.0/8 -j DROP');
    const egress = parseLoggedDrop(
      `moat-drop ${deny?.id ?? ''} api.egress.deny[0] IN=docker0 OUT=vd0 SRC=172.17.0.3 DST=10.1.2.3 PROTO=UDP SPT=5 DPT=53`,
    );
    if (egress === undefined) throw new Error('not parsed');
    expect(explainDrop(egress, p, origins, locate).words).toBe(
      'dropped by api egress deny rule 1 (firewall.yaml:5:9): never to [10.0.0.0/8]',
    );
    const stale = parseLoggedDrop('moat-drop 000000000000 ghost.ingress[3] IN=vd0');
    if (stale === undefined) throw new Error('not parsed');
    expect(explainDrop(stale, p, origins, locate).words).toMatch(
      /^dropped by a rule the current policy and containers do not make \(moat:000000000000, logged as ghost\.ingress\[3\]\)/,
    );
    expect(parseLoggedDrop('Dec  1 13:38:59 vm kernel: IN=eth0 SRC=192.0.2.1')).toBeUndefined();
  });

  test('a line exactly as ulogd2 2.0.8’s JSON output writes it (Debian’s ulogd2-json)', () => {
    const line =
      '{"timestamp": "2026-12-01T14:06:18.005759", "dvc": "Netfilter", "raw.pktlen": 60, "raw.pktcount": 1, "oob.prefix": "moat-drop 0123456789ab ghost.ingress[0]", "oob.time.sec": 1796133978, "oob.time.usec": 5759, "oob.mark": 0, "oob.ifindex_in": 1, "oob.hook": 1, "raw.mac_len": 14, "oob.family": 2, "oob.protocol": 2048, "raw.label": 0, "raw.type": 772, "raw.mac.addrlen": 6, "ip.protocol": 6, "ip.tos": 0, "ip.ttl": 64, "ip.totlen": 60, "ip.ihl": 5, "ip.csum": 4834, "ip.id": 10712, "ip.fragoff": 16384, "src_port": 50786, "dest_port": 9, "tcp.seq": 3674428595, "tcp.ackseq": 0, "tcp.window": 65495, "tcp.offset": 0, "tcp.reserved": 0, "tcp.urg": 0, "tcp.ack": 0, "tcp.psh": 0, "tcp.rst": 0, "tcp.syn": 1, "tcp.fin": 0, "tcp.res1": 0, "tcp.res2": 0, "tcp.csum": 65072, "oob.in": "lo", "oob.out": "", "src_ip": "127.0.0.1", "dest_ip": "127.0.0.1"}';
    expect(parseLoggedDrop(line)).toEqual({
      dropId: '0123456789ab',
      hint: 'ghost.ingress[0]',
      packet: {
        time: '2026-12-01T14:06:18.005759',
        protocol: 'TCP',
        source: '127.0.0.1',
        destination: '127.0.0.1',
        sourcePort: '50786',
        destinationPort: '9',
        in: 'lo',
        family: 'ipv4',
      },
    });
  });

  test('rule titles count from 1', () => {
    expect(ruleTitle(['containers', 'ghost', 'ingress', 0])).toBe('ghost ingress rule 1');
    expect(ruleTitle(['containers', 'api', 'egress', 'deny', 1])).toBe('api egress deny rule 2');
    expect(ruleTitle(['containers', 'api', 'egress', 'default'])).toBe('api egress default');
    expect(ruleTitle(['defaults', 'egress'])).toBe('defaults.egress');
  });
});
