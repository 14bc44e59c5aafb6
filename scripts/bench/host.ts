/**
 * The synthetic Docker host of the benchmark: a Docker inventory (containers, networks) and the
 * iptables content a host with that inventory and N foreign rules would hold.
 *
 * Docker's rules follow the 20.10 layout of test/fixtures/netfilter/docker-20.10-live.iptables-save
 * (DOCKER, DOCKER-ISOLATION-STAGE-1/2, DOCKER-USER jumped to first from FORWARD, DNAT and
 * MASQUERADE per published port). The foreign rules are what hosts that also run kube-proxy,
 * fail2ban and a blocklist carry: many chains, most rules with comments, in filter and nat, IPv4
 * and IPv6.
 */
import { createHash } from 'node:crypto';

export interface BenchNetwork {
  readonly id: string;
  readonly name: string;
  readonly bridge: string;
  readonly subnet4: string;
  readonly subnet6?: string;
}

export interface BenchContainer {
  readonly id: string;
  readonly name: string;
  readonly network: BenchNetwork;
  readonly ipv4: string;
  readonly ipv6?: string;
  /** Published ports: host port → container port. */
  readonly ports: readonly { hostPort: number; containerPort: number; protocol: 'tcp' | 'udp' }[];
  readonly labels: Readonly<Record<string, string>>;
}

export interface BenchInventory {
  readonly containers: readonly BenchContainer[];
  readonly networks: readonly BenchNetwork[];
}

const PER_NETWORK = 200;

/** A stable hex string for a seed (ids, chain-name hashes). */
function hex(seed: number, length: number): string {
  return createHash('sha256').update(`moat-bench ${seed}`).digest('hex').slice(0, length);
}

/** Container name of index i. */
export function containerName(i: number): string {
  return `svc-${String(i).padStart(4, '0')}`;
}

/** `count` running containers on user bridge networks of 200, each publishing one or two ports. */
export function makeInventory(count: number): BenchInventory {
  const networks: BenchNetwork[] = [];
  for (let k = 0; k * PER_NETWORK < Math.max(count, 1); k++) {
    const id = hex(1000 + k, 64);
    networks.push({
      id,
      name: `bench-net-${k}`,
      bridge: `br-${id.slice(0, 12)}`,
      subnet4: `10.10.${k}.0/24`,
      // Every other network has IPv6 enabled, as on hosts that turned it on for some projects.
      ...(k % 2 === 0 ? { subnet6: `fd00:10:${k}::/64` } : {}),
    });
  }
  const containers: BenchContainer[] = [];
  for (let i = 0; i < count; i++) {
    const network = networks[Math.floor(i / PER_NETWORK)]!;
    const host = (i % PER_NETWORK) + 2;
    const ports: BenchContainer['ports'][number][] = [
      { hostPort: 20000 + i, containerPort: 8080, protocol: 'tcp' },
    ];
    if (i % 5 === 0) ports.push({ hostPort: 40000 + i, containerPort: 9000, protocol: 'udp' });
    containers.push({
      id: hex(i, 64),
      name: containerName(i),
      network,
      ipv4: `10.10.${network.subnet4.split('.')[2]}.${host}`,
      ...(network.subnet6 === undefined
        ? {}
        : { ipv6: `${network.subnet6.replace('::/64', '')}::${host.toString(16)}` }),
      ports,
      labels: {
        'com.docker.compose.project': `proj-${i % 20}`,
        'com.docker.compose.service': containerName(i),
      },
    });
  }
  return { containers, networks };
}

/** `GET /containers/json` as Engine API 1.43 answers it. */
export function containersAnswer(inventory: BenchInventory): unknown[] {
  return inventory.containers.map((c) => ({
    Id: c.id,
    Names: [`/${c.name}`],
    Image: 'moat-bench/app:latest',
    ImageID: `sha256:${hex(7, 64)}`,
    Command: 'app --serve',
    Created: 1795915980,
    Ports: c.ports.flatMap((p) => [
      { IP: '0.0.0.0', PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.protocol },
      { IP: '::', PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.protocol },
    ]),
    Labels: c.labels,
    State: 'running',
    Status: 'Up 2 hours',
    HostConfig: { NetworkMode: c.network.name },
    NetworkSettings: {
      Networks: {
        [c.network.name]: {
          IPAMConfig: null,
          Links: null,
          Aliases: null,
          NetworkID: c.network.id,
          EndpointID: hex(5000 + c.ipv4.length, 64),
          Gateway: c.ipv4.replace(/\.\d+$/, '.1'),
          IPAddress: c.ipv4,
          IPPrefixLen: 24,
          IPv6Gateway: '',
          GlobalIPv6Address: c.ipv6 ?? '',
          GlobalIPv6PrefixLen: c.ipv6 === undefined ? 0 : 64,
          MacAddress: '02:42:0a:0a:00:02',
          DriverOpts: null,
        },
      },
    },
    Mounts: [],
  }));
}

/** `GET /networks` as Engine API 1.43 answers it. */
export function networksAnswer(inventory: BenchInventory): unknown[] {
  const bridge = {
    Name: 'bridge',
    Id: hex(999, 64),
    Scope: 'local',
    Driver: 'bridge',
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: '172.17.0.0/16' }] },
    Internal: false,
    Options: { 'com.docker.network.bridge.name': 'docker0' },
    Labels: {},
  };
  return [
    bridge,
    ...inventory.networks.map((n) => ({
      Name: n.name,
      Id: n.id,
      Scope: 'local',
      Driver: 'bridge',
      EnableIPv6: n.subnet6 !== undefined,
      IPAM: {
        Driver: 'default',
        Options: {},
        Config: [
          { Subnet: n.subnet4 },
          ...(n.subnet6 === undefined ? [] : [{ Subnet: n.subnet6 }]),
        ],
      },
      Internal: false,
      Options: {},
      Labels: {},
    })),
  ];
}

/** What one table of one family gets: chains to declare and rules to append, in order. */
interface TableContent {
  readonly policies: Map<string, string>;
  readonly chains: string[];
  /** Rules that go before all others (jumps at the top of INPUT/FORWARD). */
  readonly head: string[];
  readonly rules: string[];
}

type Family = 'ipv4' | 'ipv6';
type HostTables = Record<Family, Record<'filter' | 'nat', TableContent>>;

function emptyTables(): HostTables {
  const table = (builtins: readonly string[]): TableContent => ({
    policies: new Map(builtins.map((b) => [b, 'ACCEPT'])),
    chains: [],
    head: [],
    rules: [],
  });
  const family = (): Record<'filter' | 'nat', TableContent> => ({
    filter: table(['INPUT', 'FORWARD', 'OUTPUT']),
    nat: table(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']),
  });
  return { ipv4: family(), ipv6: family() };
}

/** Docker 20.10's rules for the inventory, per family. */
function addDocker(tables: HostTables, inventory: BenchInventory): void {
  for (const family of ['ipv4', 'ipv6'] as const) {
    const filter = tables[family].filter;
    const nat = tables[family].nat;
    const nets = inventory.networks.filter((n) => family === 'ipv4' || n.subnet6 !== undefined);
    const bridges = [
      { bridge: 'docker0', subnet: family === 'ipv4' ? '172.17.0.0/16' : undefined },
      ...nets.map((n) => ({
        bridge: n.bridge,
        subnet: family === 'ipv4' ? n.subnet4 : n.subnet6,
      })),
    ];
    filter.policies.set('FORWARD', 'DROP');
    filter.chains.push(
      'DOCKER',
      'DOCKER-ISOLATION-STAGE-1',
      'DOCKER-ISOLATION-STAGE-2',
      'DOCKER-USER',
    );
    nat.chains.push('DOCKER');
    filter.rules.push('-A FORWARD -j DOCKER-USER', '-A FORWARD -j DOCKER-ISOLATION-STAGE-1');
    nat.rules.push(
      '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
      family === 'ipv4'
        ? '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER'
        : '-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER',
    );
    for (const { bridge, subnet } of bridges) {
      filter.rules.push(
        `-A FORWARD -o ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
        `-A FORWARD -o ${bridge} -j DOCKER`,
        `-A FORWARD -i ${bridge} ! -o ${bridge} -j ACCEPT`,
        `-A FORWARD -i ${bridge} -o ${bridge} -j ACCEPT`,
        `-A DOCKER-ISOLATION-STAGE-1 -i ${bridge} ! -o ${bridge} -j DOCKER-ISOLATION-STAGE-2`,
        `-A DOCKER-ISOLATION-STAGE-2 -o ${bridge} -j DROP`,
      );
      if (subnet !== undefined)
        nat.rules.push(`-A POSTROUTING -s ${subnet} ! -o ${bridge} -j MASQUERADE`);
      nat.rules.push(`-A DOCKER -i ${bridge} -j RETURN`);
    }
    filter.rules.push(
      '-A DOCKER-ISOLATION-STAGE-1 -j RETURN',
      '-A DOCKER-ISOLATION-STAGE-2 -j RETURN',
      '-A DOCKER-USER -j RETURN',
    );
    const slash = family === 'ipv4' ? '/32' : '/128';
    for (const c of inventory.containers) {
      const address = family === 'ipv4' ? c.ipv4 : c.ipv6;
      if (address === undefined) continue;
      const to = family === 'ipv4' ? address : `[${address}]`;
      for (const p of c.ports) {
        const m = `-p ${p.protocol} -m ${p.protocol}`;
        filter.rules.push(
          `-A DOCKER -d ${address}${slash} ! -i ${c.network.bridge} -o ${c.network.bridge} ${m} --dport ${p.containerPort} -j ACCEPT`,
        );
        nat.rules.push(
          `-A POSTROUTING -s ${address}${slash} -d ${address}${slash} ${m} --dport ${p.containerPort} -j MASQUERADE`,
          `-A DOCKER ! -i ${c.network.bridge} ${m} --dport ${p.hostPort} -j DNAT --to-destination ${to}:${p.containerPort}`,
        );
      }
    }
  }
}

function pseudoRandom(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    // xorshift32: deterministic, so every run builds the same host
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function ipv4In(base: number, mask: number, r: number): string {
  const a = (base | (r & ~mask)) >>> 0;
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/**
 * `n` foreign rules: about 60% in the IPv4 filter table (fail2ban jails, a commented blocklist,
 * kube-proxy's filter rules), 30% in the IPv4 nat table (kube-proxy services and endpoints,
 * one chain each) and 10% in the IPv6 filter table (fail2ban's IPv6 bans).
 */
function addForeign(tables: HostTables, n: number): void {
  if (n === 0) return;
  const next = pseudoRandom(0x5eed + n);
  const f4 = tables.ipv4.filter;
  const n4 = tables.ipv4.nat;
  const f6 = tables.ipv6.filter;
  let budget4Filter = Math.round(n * 0.6);
  let budgetNat = Math.round(n * 0.3);
  let budget6 = n - budget4Filter - budgetNat;

  // fail2ban: a jail chain per service, jumped to from the top of INPUT, one REJECT per ban.
  const jails = ['sshd', 'nginx-http-auth', 'postfix', 'dovecot'];
  const jailPorts = ['22', '80,443', '25,465,587', '143,993'];
  for (const [t, fam] of [
    [f4, 'ipv4'],
    [f6, 'ipv6'],
  ] as const) {
    jails.forEach((jail, j) => {
      t.chains.push(`f2b-${jail}`);
      t.head.push(`-A INPUT -p tcp -m multiport --dports ${jailPorts[j]} -j f2b-${jail}`);
      t.rules.push(`-A f2b-${jail} -j RETURN`);
    });
    if (fam === 'ipv4') budget4Filter -= jails.length * 2;
    else budget6 -= jails.length * 2;
  }
  // kube-proxy's filter-table chains.
  f4.chains.push(
    'KUBE-FIREWALL',
    'KUBE-SERVICES',
    'KUBE-EXTERNAL-SERVICES',
    'KUBE-NODEPORTS',
    'KUBE-FORWARD',
    'BLOCKLIST',
  );
  f4.head.push(
    '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A INPUT -j KUBE-FIREWALL',
    '-A INPUT -j BLOCKLIST',
  );
  f4.rules.push(
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  );
  budget4Filter -= 10;

  let i = 0;
  while (budget4Filter > 0) {
    const r = next();
    const kind = i % 10;
    if (kind < 5) {
      const jail = jails[r % jails.length]!;
      f4.rules.push(
        `-A f2b-${jail} -s ${ipv4In(0x64400000, 0xffc00000, r)}/32 -j REJECT --reject-with icmp-port-unreachable`,
      );
    } else if (kind < 8) {
      f4.rules.push(
        `-A BLOCKLIST -s ${ipv4In(0xc6120000, 0xfffe0000, r)}/32 -m comment --comment "blocklist ${1000 + (r % 9000)}: reported abuse" -j DROP`,
      );
    } else if (kind < 9) {
      f4.rules.push(
        `-A KUBE-SERVICES -d 10.96.${(r >>> 8) & 255}.${r & 255}/32 -p tcp -m comment --comment "ns-${r % 97}/svc-${i}:http has no endpoints" -m tcp --dport ${80 + (r % 9000)} -j REJECT --reject-with icmp-port-unreachable`,
      );
    } else {
      f4.rules.push(
        `-A KUBE-NODEPORTS -p tcp -m comment --comment "ns-${r % 97}/svc-${i}:health" -m tcp --dport ${30000 + (i % 2767)} -j ACCEPT`,
      );
    }
    budget4Filter--;
    i++;
  }

  // kube-proxy's nat table: per service one KUBE-SERVICES rule, a KUBE-SVC chain choosing one of
  // two endpoints, and a KUBE-SEP chain per endpoint (mark for masquerade, DNAT): 7 rules.
  n4.chains.push('KUBE-SERVICES', 'KUBE-MARK-MASQ', 'KUBE-POSTROUTING');
  n4.rules.push(
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
  );
  budgetNat -= 5;
  let s = 0;
  while (budgetNat > 0) {
    const r = next();
    const svc = `ns-${r % 97}/svc-${s}:http`;
    const svcChain = `KUBE-SVC-${hex(s, 16).toUpperCase()}`;
    const clusterIp = `10.97.${(s >>> 8) & 255}.${s & 255}`;
    n4.chains.push(svcChain);
    n4.rules.push(
      `-A KUBE-SERVICES -d ${clusterIp}/32 -p tcp -m comment --comment "${svc} cluster IP" -m tcp --dport 80 -j ${svcChain}`,
    );
    budgetNat--;
    for (let e = 0; e < 2 && budgetNat > 0; e++) {
      const sep = `KUBE-SEP-${hex(s * 2 + e + 77, 16).toUpperCase()}`;
      const endpoint = `10.244.${(s >>> 7) & 255}.${(s * 2 + e) & 255 || 1}`;
      n4.chains.push(sep);
      n4.rules.push(
        e === 0
          ? `-A ${svcChain} -m comment --comment "${svc} -> ${endpoint}:8080" -m statistic --mode random --probability 0.50000000000 -j ${sep}`
          : `-A ${svcChain} -m comment --comment "${svc} -> ${endpoint}:8080" -j ${sep}`,
        `-A ${sep} -s ${endpoint}/32 -m comment --comment "${svc}" -j KUBE-MARK-MASQ`,
        `-A ${sep} -p tcp -m comment --comment "${svc}" -m tcp -j DNAT --to-destination ${endpoint}:8080`,
      );
      budgetNat -= 3;
    }
    s++;
  }

  while (budget6 > 0) {
    const r = next();
    const jail = jails[r % jails.length]!;
    f6.rules.push(
      `-A f2b-${jail} -s 2001:db8:${(r >>> 16).toString(16)}:${(r & 0xffff).toString(16)}::1/128 -j REJECT --reject-with icmp6-port-unreachable`,
    );
    budget6--;
  }
}

function renderTable(name: string, t: TableContent): string[] {
  return [
    `*${name}`,
    ...[...t.policies].map(([chain, policy]) => `:${chain} ${policy} [0:0]`),
    ...t.chains.map((c) => `:${c} - [0:0]`),
    ...t.head,
    ...t.rules,
    'COMMIT',
  ];
}

export interface HostRuleset {
  /** Full iptables-restore input per family (replaces the filter and nat tables). */
  readonly ipv4: string;
  readonly ipv6: string;
  /** Rules in it, per family (Docker's and the foreign ones). */
  readonly ruleCount: Readonly<Record<Family, number>>;
}

/** The host's whole ruleset: Docker's rules for the inventory plus `foreign` other rules. */
export function hostRuleset(inventory: BenchInventory, foreign: number): HostRuleset {
  const tables = emptyTables();
  addDocker(tables, inventory);
  addForeign(tables, foreign);
  const render = (family: Family): string =>
    [
      ...renderTable('filter', tables[family].filter),
      ...renderTable('nat', tables[family].nat),
      '',
    ].join('\n');
  const count = (family: Family): number =>
    (['filter', 'nat'] as const).reduce(
      (sum, t) => sum + tables[family][t].head.length + tables[family][t].rules.length,
      0,
    );
  return {
    ipv4: render('ipv4'),
    ipv6: render('ipv6'),
    ruleCount: { ipv4: count('ipv4'), ipv6: count('ipv6') },
  };
}
