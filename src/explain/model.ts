/**
 * What the packet-path evaluator reads (a World: the host's whole ruleset, ipsets, addresses,
 * routes, listening sockets, a few sysctls, the Docker inventory) and what it answers (a
 * verdict per probe, with the trail of rules that decided it). Types only.
 */
import type { Inventory } from '../docker/model.js';
import type { LiveNetfilter } from '../netfilter/model.js';
import type { Family } from '../policy/model.js';

export type Protocol = 'tcp' | 'udp';

export interface HostAddress {
  readonly family: Family;
  readonly address: string;
  readonly prefixLength: number;
  /** The IPv4 broadcast address `ip addr` shows for it, if any. */
  readonly broadcast?: string;
  /** `global`, `link`, `host`. */
  readonly scope?: string;
}

export interface HostInterface {
  readonly name: string;
  readonly up: boolean;
  readonly addresses: readonly HostAddress[];
}

/** A route of the main table as `ip -j route` prints it, normalised. */
export interface HostRoute {
  readonly family: Family;
  /** A prefix; `default` is `0.0.0.0/0` or `::/0`. */
  readonly dst: string;
  /** `unicast`, `blackhole`, `unreachable`, `prohibit`, `throw`, … */
  readonly type: string;
  readonly dev?: string;
  readonly gateway?: string;
  readonly prefsrc?: string;
  readonly metric: number;
}

/** A listening socket (`ss -Hlntup`). */
export interface ListeningSocket {
  readonly protocol: Protocol;
  /** `0.0.0.0`, `::` (IPv6 only), `*` (both families), or one address. */
  readonly address: string;
  readonly port: number;
  /** `%dev` binding, when the socket is bound to a device. */
  readonly device?: string;
  readonly process?: string;
  readonly pid?: number;
}

/** Where one docker-proxy process forwards to (its command line). */
export interface ProxyTarget {
  readonly pid: number;
  readonly protocol: Protocol;
  readonly containerIp: string;
  readonly containerPort: number;
}

/** The host's network facts. An absent field was not captured; the evaluator says so. */
export interface HostNetwork {
  readonly interfaces: readonly HostInterface[];
  readonly routes?: Readonly<Record<Family, readonly HostRoute[]>>;
  /** Policy-routing rules beyond the default three (local, main, default), as text. */
  readonly extraRoutingRules?: readonly string[];
  readonly sockets?: readonly ListeningSocket[];
  readonly proxies?: readonly ProxyTarget[];
  /** Read sysctls; a key absent from a captured map does not exist on the host. */
  readonly sysctl?: ReadonlyMap<string, string>;
  /** nftables tables (`ip filter`, `ip docker-bridges`), when nft could list them. */
  readonly nftTables?: readonly string[];
  /** Docker's firewall backend (`iptables`, `nftables`), from `GET /info`. */
  readonly firewallBackend?: string;
}

/** Everything one evaluation reads. */
export interface World {
  /** All tables of both families (raw, mangle, nat, filter, security) and every ipset. */
  readonly netfilter: LiveNetfilter;
  /** Notices iptables-save printed per family (e.g. legacy tables present). */
  readonly saveWarnings?: Readonly<Record<Family, readonly string[]>>;
  readonly inventory: Inventory;
  readonly network: HostNetwork;
}

export type Verdict = 'reachable' | 'blocked' | 'unknown';

/** A rule as the trail shows it. */
export interface RuleRef {
  readonly family: Family;
  readonly table: string;
  readonly chain: string;
  /** 1-based, as `iptables -L --line-numbers` counts. */
  readonly position: number;
  readonly spec: string;
  readonly moatId?: string;
}

export type TrailStep =
  | {
      readonly kind: 'rule';
      readonly rule: RuleRef;
      /** `jump DOCKER-USER`, `DROP`, `DNAT to 172.17.0.2:2368`, `RETURN`, `LOG (continues)`. */
      readonly effect: string;
      /** Set when a match of this rule is not modelled and the run assumed its outcome. */
      readonly assumed?: 'matched' | 'not matched';
    }
  | {
      readonly kind: 'policy';
      readonly family: Family;
      readonly table: string;
      readonly chain: string;
      readonly policy: string;
    }
  | { readonly kind: 'note'; readonly text: string };

/** A rule (or a fact) the evaluator could not model, and why. */
export interface Unmodelled {
  readonly rule?: RuleRef;
  readonly why: string;
}

/** One packet's journey, decided. */
export interface ProbeOutcome {
  readonly verdict: Verdict;
  /** One sentence: `dropped by filter MOAT-SRC-… rule 2`, `delivered to container ghost`. */
  readonly reason: string;
  readonly trail: readonly TrailStep[];
  /** Why the verdict is unknown, or what was assumed without changing it. */
  readonly unmodelled: readonly Unmodelled[];
}

/** An endpoint of a probe, concrete. */
export interface ProbeEnd {
  readonly address: string;
  readonly port?: number;
  /** `the host`, `198.51.100.7 (on vd0)`, `container api`, `anyone (e.g. 1.0.0.1)`. */
  readonly label: string;
}

export interface Probe {
  readonly family: Family;
  readonly protocol: Protocol;
  readonly from: ProbeEnd;
  readonly to: ProbeEnd;
  readonly outcome: ProbeOutcome;
}

/** Several probes (representatives of a class, a container's networks) summed up. */
export type Summary = Verdict | 'partly';

export interface FamilyAnswer {
  readonly family: Family;
  readonly verdict: Summary;
  readonly probes: readonly Probe[];
  /** Why no probe could be built (no address of this family), when there is none. */
  readonly note?: string;
}

export interface Explanation {
  readonly from: string;
  readonly to: string;
  /** What the endpoints resolved to, e.g. `ghost publishes 2368/tcp on 0.0.0.0 and ::`. */
  readonly notes: readonly string[];
  readonly answers: readonly FamilyAnswer[];
}
