/**
 * The host facts beyond netfilter and Docker's containers that the evaluator reads, as the
 * files a snapshot keeps them in (the tools' own output), and the World built from them. Pure.
 */
import type { Inventory } from '../docker/model.js';
import type { LiveNetfilter } from '../netfilter/model.js';
import type { Family } from '../policy/model.js';
import type { HostNetwork, World } from './model.js';
import {
  extraRoutingRules,
  HostFactsError,
  parseDockerInfo,
  parseIpAddr,
  parseIpRoute,
  parseNftTables,
  parseProxies,
  parseSockets,
  parseSysctl,
} from './parse-host.js';

/** Snapshot file names of each fact. */
export const CAPTURE_FILES = {
  addresses: 'ip-addr.json',
  routes4: 'ip-route.json',
  routes6: 'ip6-route.json',
  rules4: 'ip-rule.json',
  rules6: 'ip6-rule.json',
  sockets: 'sockets.txt',
  proxies: 'proxies.txt',
  sysctl: 'sysctl.txt',
  nftTables: 'nft-tables.json',
  dockerInfo: 'docker-info.json',
} as const;

export type CaptureKey = keyof typeof CAPTURE_FILES;

/** What each tool printed; an absent key was not captured (an older snapshot, a missing tool). */
export type NetworkCapture = Partial<Record<CaptureKey, string>>;

/** The sysctls the evaluator reads; route_localnet is read per interface too. */
export function sysctlKeys(interfaces: readonly string[]): string[] {
  return [
    'net.ipv4.ip_forward',
    'net.ipv6.conf.all.forwarding',
    'net.bridge.bridge-nf-call-iptables',
    'net.bridge.bridge-nf-call-ip6tables',
    'net.ipv4.conf.all.route_localnet',
    ...interfaces.map((i) => `net.ipv4.conf.${i}.route_localnet`),
  ];
}

function parsed<T>(
  capture: NetworkCapture,
  key: CaptureKey,
  read: (text: string) => T,
): T | undefined {
  const text = capture[key];
  if (text === undefined) return undefined;
  try {
    return read(text);
  } catch (error) {
    if (error instanceof HostFactsError)
      throw new HostFactsError(CAPTURE_FILES[key], error.message);
    throw error;
  }
}

export function networkFromCapture(capture: NetworkCapture): HostNetwork {
  const interfaces = parsed(capture, 'addresses', parseIpAddr) ?? [];
  const routes4 = parsed(capture, 'routes4', (t) => parseIpRoute(t, 'ipv4'));
  const routes6 = parsed(capture, 'routes6', (t) => parseIpRoute(t, 'ipv6'));
  const rules = [
    ...(parsed(capture, 'rules4', (t) => extraRoutingRules(t, 'ipv4')) ?? []),
    ...(parsed(capture, 'rules6', (t) => extraRoutingRules(t, 'ipv6')) ?? []),
  ];
  const sockets = parsed(capture, 'sockets', parseSockets);
  const proxies = parsed(capture, 'proxies', parseProxies);
  const sysctl = parsed(capture, 'sysctl', parseSysctl);
  const nftTables = parsed(capture, 'nftTables', parseNftTables);
  const firewallBackend = parsed(capture, 'dockerInfo', parseDockerInfo);
  return {
    interfaces,
    ...(routes4 === undefined || routes6 === undefined
      ? {}
      : { routes: { ipv4: routes4, ipv6: routes6 } }),
    extraRoutingRules: rules,
    ...(sockets === undefined ? {} : { sockets }),
    ...(proxies === undefined ? {} : { proxies }),
    ...(sysctl === undefined ? {} : { sysctl }),
    ...(nftTables === undefined ? {} : { nftTables }),
    ...(firewallBackend === undefined ? {} : { firewallBackend }),
  };
}

export function buildWorld(
  netfilter: LiveNetfilter,
  inventory: Inventory,
  capture: NetworkCapture,
  saveWarnings?: Readonly<Record<Family, readonly string[]>>,
): World {
  return {
    netfilter,
    inventory,
    network: networkFromCapture(capture),
    ...(saveWarnings === undefined ? {} : { saveWarnings }),
  };
}
