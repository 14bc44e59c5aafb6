/**
 * The few facts of the live host that compiling needs: which ipsets exist (and their family),
 * where moat hooks routed traffic, which network interfaces the host has, and which programs
 * listen on which ports. Read off the host's state; pure.
 */
import type { LiveNetfilter } from '../netfilter/model.js';
import { FAMILIES, type Family, type Protocol } from '../policy/model.js';

/** A socket listening on the host (TCP in LISTEN, or a bound UDP socket) and its programs. */
export interface Listener {
  readonly protocol: Protocol;
  readonly port: number;
  /** The local address it is bound to (`0.0.0.0`, `::`, `127.0.0.1`, …). */
  readonly address: string;
  /** The programs (`comm`) holding it, with their pids; empty when not looked up or not found. */
  readonly owners: readonly { readonly pid: number; readonly command: string }[];
  /** The socket's inode on a live host, to look its owners up later. */
  readonly inode?: string;
}

export interface HostFacts {
  /** Kernel name → family of every ipset on the host (external sets are looked up here). */
  readonly ipsetFamilies: ReadonlyMap<string, Family>;
  /** The chain that receives routed traffic first: DOCKER-USER where Docker made it. */
  readonly forwardHook: Readonly<Record<Family, string>>;
  /**
   * Whether Docker DNATs IPv6 (its ip6tables support, on by default since 27, or the nftables
   * backend); without it an IPv6 client reaches a published port through docker-proxy.
   */
  readonly ipv6Dnat: boolean;
  /** The host's network interfaces; undefined when unknown. */
  readonly interfaces?: readonly string[];
  /** The host's listening sockets; undefined when unknown (a snapshot that did not record them). */
  readonly listeners?: readonly Listener[];
}

export const DEFAULT_HOST_FACTS: HostFacts = {
  ipsetFamilies: new Map(),
  forwardHook: { ipv4: 'DOCKER-USER', ipv6: 'DOCKER-USER' },
  ipv6Dnat: true,
};

/** Programs of Docker's own that hold published ports open. */
export const DOCKER_PORT_HOLDERS: readonly string[] = ['docker-proxy', 'dockerd', 'rootlesskit'];

export function hostFacts(
  live: LiveNetfilter,
  system: { interfaces?: readonly string[]; listeners?: readonly Listener[] } = {},
): HostFacts {
  const forwardHook = {} as Record<Family, string>;
  for (const family of FAMILIES) {
    const chains = live.rulesets[family].tables.get('filter')?.chains;
    // Where Docker made no DOCKER-USER (its IPv6 support is off, or Docker 29's nftables
    // backend), hook FORWARD itself.
    forwardHook[family] = chains?.has('DOCKER-USER') === true ? 'DOCKER-USER' : 'FORWARD';
  }
  const ipsetFamilies = new Map([...live.ipsets.values()].map((s) => [s.name, s.family] as const));
  const dockerChains = (family: Family): boolean => {
    const chains = live.rulesets[family].tables.get('filter')?.chains;
    return chains?.has('DOCKER') === true || chains?.has('DOCKER-USER') === true;
  };
  return {
    forwardHook,
    ipsetFamilies,
    // Docker's iptables rules in IPv6 mean it DNATs IPv6; none in either family means its
    // nftables backend, which does too.
    ipv6Dnat: dockerChains('ipv6') || !dockerChains('ipv4'),
    ...(system.interfaces === undefined ? {} : { interfaces: system.interfaces }),
    ...(system.listeners === undefined ? {} : { listeners: system.listeners }),
  };
}
