/**
 * The policy after validation and normalisation: what the compiler consumes.
 * Every string here has already been checked against the kernel's and iptables' limits,
 * so later stages may render it without further escaping.
 */

export type Family = 'ipv4' | 'ipv6';
export const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];

export type Protocol = 'tcp' | 'udp';

/** A port or an inclusive range of ports; `first === last` for a single port. */
export interface PortRange {
  readonly protocol: Protocol;
  readonly first: number;
  readonly last: number;
}

/** An address block in canonical form (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7/32`). */
export interface Cidr {
  readonly family: Family;
  readonly cidr: string;
}

/** Where ingress traffic may come from. */
export type IngressSource =
  | { readonly kind: 'host' }
  | { readonly kind: 'any' }
  | { readonly kind: 'cidr'; readonly block: Cidr }
  | { readonly kind: 'ipset'; readonly set: string }
  | { readonly kind: 'container'; readonly group: string };

/** Where egress traffic may go. */
export type EgressDestination =
  | { readonly kind: 'any' }
  | { readonly kind: 'cidr'; readonly block: Cidr }
  | { readonly kind: 'ipset'; readonly set: string }
  | { readonly kind: 'container'; readonly group: string };

export interface IngressRule {
  /** Published (host-side) ports, or every port the selected containers publish. */
  readonly ports: 'all' | readonly PortRange[];
  readonly from: readonly IngressSource[];
  /**
   * The operator's deliberate choice to restrict these ports also where a host program (not
   * Docker's proxy) listens on them; without it such a rule is refused when planning.
   */
  readonly restrictHostServices?: true;
}

export interface EgressRule {
  readonly to: readonly EgressDestination[];
  /** Destination ports; absent means every port and protocol. */
  readonly ports?: readonly PortRange[];
}

export type Verdict = 'allow' | 'deny';

export interface EgressPolicy {
  readonly default: Verdict;
  readonly allow: readonly EgressRule[];
  /** Deny wins over allow. */
  readonly deny: readonly EgressRule[];
}

export type ContainerSelector =
  | { readonly kind: 'name'; readonly names: readonly string[] }
  | { readonly kind: 'label'; readonly key: string; readonly value?: string }
  | { readonly kind: 'compose'; readonly project: string; readonly service?: string };

/** A named group of containers and the rules that apply to them. */
export interface ContainerGroup {
  readonly name: string;
  readonly select: ContainerSelector;
  readonly ingress: readonly IngressRule[];
  /** Absent: the group has no egress section and `defaults.egress` applies. */
  readonly egress?: EgressPolicy;
}

export type IpsetType = 'hash:ip' | 'hash:net';

export interface ManagedIpset {
  readonly kind: 'managed';
  /** The key in the policy file. */
  readonly key: string;
  /** The kernel's name: `moat-` + key. */
  readonly kernelName: string;
  readonly family: Family;
  readonly type: IpsetType;
  /** Canonical entries, sorted and deduplicated. */
  readonly entries: readonly string[];
}

export interface ExternalIpset {
  readonly kind: 'external';
  readonly key: string;
  /** The existing set's kernel name, maintained by someone else. */
  readonly kernelName: string;
}

export type PolicyIpset = ManagedIpset | ExternalIpset;

export interface PolicyDefaults {
  /** Published ports that no rule names: `allow` keeps Docker's behaviour, `host` makes them host-only. */
  readonly ingress: 'allow' | 'host';
  readonly egress: Verdict;
}

export interface Policy {
  readonly version: 1;
  readonly defaults: PolicyDefaults;
  readonly ipsets: ReadonlyMap<string, PolicyIpset>;
  /** In file order. */
  readonly containers: readonly ContainerGroup[];
}

export const EMPTY_POLICY: Policy = {
  version: 1,
  defaults: { ingress: 'allow', egress: 'allow' },
  ipsets: new Map(),
  containers: [],
};
