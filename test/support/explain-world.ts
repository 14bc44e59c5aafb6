/**
 * Worlds for evaluator tests: a Docker host's facts written briefly (iptables-save text,
 * interfaces as `name: [addresses]`), with defaults that match the sandbox's layout:
 *
 *   eth0    198.51.100.1/24  2001:db8:100::1/64   (outside; default routes)
 *   docker0 172.17.0.1/16                          (bridge of the network "bridge")
 *   bridge1 192.0.2.1/24     fd00:db8:1::1/64 fe80::1  (bridge of the network "usernet")
 *   ghost   172.17.0.2, -p 2368:2368 (0.0.0.0 and ::)
 *   web     192.0.2.2 and fd00:db8:1::2, -p 8080:80
 */
import type { DockerContainer, DockerNetwork, Inventory } from '../../src/docker/model.js';
import { formatPrefix, parseAddress, prefixOf } from '../../src/explain/address.js';
import type {
  HostInterface,
  HostRoute,
  ListeningSocket,
  ProxyTarget,
  World,
} from '../../src/explain/model.js';
import type { LiveIpset } from '../../src/netfilter/model.js';
import { parseIpsetSave } from '../../src/netfilter/parse-ipset.js';
import { parseSave, parseSaveDetailed } from '../../src/netfilter/parse-save.js';

export const EMPTY_SAVE =
  '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';

const INTERFACES: Record<string, string[]> = {
  lo: ['127.0.0.1/8', '::1/128'],
  eth0: ['198.51.100.1/24', '2001:db8:100::1/64'],
  docker0: ['172.17.0.1/16'],
  bridge1: ['192.0.2.1/24', 'fd00:db8:1::1/64', 'fe80::1/64'],
};

export const NETWORKS: DockerNetwork[] = [
  {
    id: 'n0',
    name: 'bridge',
    driver: 'bridge',
    bridge: 'docker0',
    internal: false,
    subnets: ['172.17.0.0/16'],
    ipv6: false,
    gatewayMode: { ipv4: 'nat', ipv6: 'nat' },
  },
  {
    id: 'n1',
    name: 'usernet',
    driver: 'bridge',
    bridge: 'bridge1',
    internal: false,
    subnets: ['192.0.2.0/24', 'fd00:db8:1::/64'],
    ipv6: true,
    gatewayMode: { ipv4: 'nat', ipv6: 'nat' },
  },
];

export const CONTAINERS: DockerContainer[] = [
  {
    id: 'c0',
    name: 'ghost',
    labels: {},
    state: 'running',
    attachments: [{ network: 'bridge', networkId: 'n0', ipv4: '172.17.0.2' }],
    ports: [
      { hostIp: '0.0.0.0', hostPort: 2368, containerPort: 2368, protocol: 'tcp' },
      { hostIp: '::', hostPort: 2368, containerPort: 2368, protocol: 'tcp' },
    ],
  },
  {
    id: 'c1',
    name: 'web',
    labels: {},
    state: 'running',
    attachments: [
      { network: 'usernet', networkId: 'n1', ipv4: '192.0.2.2', ipv6: 'fd00:db8:1::2' },
    ],
    ports: [
      { hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostIp: '::', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
    ],
  },
];

function interfacesOf(spec: Record<string, string[]>): HostInterface[] {
  return Object.entries(spec).map(([name, addresses]) => ({
    name,
    up: true,
    addresses: addresses.map((a) => {
      const [address = '', length = '32'] = a.split('/');
      return {
        family: address.includes(':') ? ('ipv6' as const) : ('ipv4' as const),
        address,
        prefixLength: Number(length),
        scope:
          address === '127.0.0.1' || address === '::1'
            ? 'host'
            : address.startsWith('fe80:')
              ? 'link'
              : 'global',
      };
    }),
  }));
}

function connectedRoutes(interfaces: HostInterface[]): HostRoute[] {
  const out: HostRoute[] = [];
  for (const i of interfaces) {
    if (i.name === 'lo') continue;
    for (const a of i.addresses) {
      if (a.scope === 'link') continue;
      const bits = a.family === 'ipv4' ? 32 : 128;
      if (a.prefixLength === bits) continue;
      out.push({
        family: a.family,
        dst: networkOf(a.address, a.prefixLength),
        type: 'unicast',
        dev: i.name,
        prefsrc: a.address,
        metric: 0,
      });
    }
  }
  out.push({
    family: 'ipv4',
    dst: '0.0.0.0/0',
    type: 'unicast',
    dev: 'eth0',
    gateway: '198.51.100.254',
    metric: 0,
  });
  out.push({
    family: 'ipv6',
    dst: '::/0',
    type: 'unicast',
    dev: 'eth0',
    gateway: '2001:db8:100::fe',
    metric: 1024,
  });
  return out;
}

function networkOf(address: string, length: number): string {
  const parsed = parseAddress(address);
  if (parsed === undefined) throw new Error(`not an address: ${address}`);
  return formatPrefix(prefixOf(parsed, length));
}

export interface WorldSpec {
  readonly ipv4?: string;
  readonly ipv6?: string;
  readonly ipsets?: string;
  readonly interfaces?: Record<string, string[]>;
  readonly routes?: readonly HostRoute[];
  readonly sockets?: readonly ListeningSocket[];
  readonly proxies?: readonly ProxyTarget[];
  readonly sysctl?: Record<string, string>;
  readonly inventory?: Inventory;
  readonly firewallBackend?: string;
  readonly nftTables?: readonly string[];
  readonly noSysctl?: boolean;
}

export const FORWARDING: Record<string, string> = {
  'net.ipv4.ip_forward': '1',
  'net.ipv6.conf.all.forwarding': '1',
  'net.bridge.bridge-nf-call-iptables': '1',
  'net.bridge.bridge-nf-call-ip6tables': '1',
  'net.ipv4.conf.all.route_localnet': '0',
};

export function world(spec: WorldSpec = {}): World {
  const interfaces = interfacesOf(spec.interfaces ?? INTERFACES);
  const routes = spec.routes ?? connectedRoutes(interfaces);
  const ipsets: Map<string, LiveIpset> = parseIpsetSave(spec.ipsets ?? '');
  const v4 = spec.ipv4 ?? EMPTY_SAVE;
  const v6 = spec.ipv6 ?? EMPTY_SAVE;
  return {
    netfilter: {
      backend: 'nft',
      rulesets: { ipv4: parseSave(v4, 'ipv4'), ipv6: parseSave(v6, 'ipv6') },
      ipsets,
    },
    saveWarnings: {
      ipv4: parseSaveDetailed(v4, 'ipv4').warnings,
      ipv6: parseSaveDetailed(v6, 'ipv6').warnings,
    },
    inventory: spec.inventory ?? { containers: CONTAINERS, networks: NETWORKS },
    network: {
      interfaces,
      routes: {
        ipv4: routes.filter((r) => r.family === 'ipv4'),
        ipv6: routes.filter((r) => r.family === 'ipv6'),
      },
      extraRoutingRules: [],
      sockets: spec.sockets ?? [],
      proxies: spec.proxies ?? [],
      ...(spec.noSysctl === true
        ? {}
        : { sysctl: new Map(Object.entries({ ...FORWARDING, ...spec.sysctl })) }),
      ...(spec.firewallBackend === undefined ? {} : { firewallBackend: spec.firewallBackend }),
      ...(spec.nftTables === undefined ? {} : { nftTables: spec.nftTables }),
    },
  };
}

/** An iptables-save text of one filter table: chains (`NAME POLICY` or `NAME`) and rules. */
export function filter(
  chains: readonly string[],
  rules: readonly string[],
  table = 'filter',
): string {
  const declared = chains.map((c) => {
    const [name, policy] = c.split(' ');
    return `:${name} ${policy ?? '-'} [0:0]`;
  });
  return [`*${table}`, ...declared, ...rules, 'COMMIT', ''].join('\n');
}
