/** What moat wants the host to hold: its owned chains, jumps and ipsets, per family. */
import type { Family, IpsetType, Protocol } from '../policy/model.js';

/**
 * Where in the policy a rule came from: the path of the policy node (`containers.ghost.ingress[0]`
 * is `['containers', 'ghost', 'ingress', 0]`; the defaults are `['defaults', 'ingress']`).
 * Positions (line, column) are found from the path when they are shown, so the compiled model
 * stays free of the file's text.
 */
export interface RuleOrigin {
  readonly path: readonly (string | number)[];
}

/** A rule moat owns. `id` is a short hash of the chain and spec, carried as `moat:<id>`. */
export interface OwnedRule {
  readonly chain: string;
  /** The rule without its comment, in the form moat renders it. */
  readonly spec: string;
  readonly id: string;
  /** The full text after `-A <chain> ` that moat writes, its comment included. */
  readonly line: string;
  /** The policy rules that made it; empty for moat's structural rules (jumps, replies). */
  readonly origins: readonly RuleOrigin[];
}

export interface OwnedChain {
  readonly name: string;
  readonly rules: readonly OwnedRule[];
}

/** moat's jump at the top of a chain it does not own (DOCKER-USER, INPUT). */
export interface OwnedJump {
  /** The built-in or Docker chain that holds the jump. */
  readonly hook: string;
  readonly rule: OwnedRule;
}

/** What one family's filter table should hold. */
export interface DesiredFamily {
  readonly family: Family;
  /** In dependency order: a chain only jumps to chains listed after it. */
  readonly chains: readonly OwnedChain[];
  readonly jumps: readonly OwnedJump[];
  /** A digest of everything above, recorded on the host so drift can be told from change. */
  readonly digest: string;
}

export interface DesiredIpset {
  readonly name: string;
  readonly type: IpsetType;
  readonly family: Family;
  /** Sorted, canonical. */
  readonly members: readonly string[];
}

/**
 * One way Docker opens a container port to the outside, as the inventory shows it: a host port
 * DNATed to the container (`-p 8080:80`), or on a `routed` network the container's own address
 * and port. The plan says, for each, who may reach it; those words are computed from the rules.
 */
export interface Publication {
  readonly container: string;
  /** The groups that select the container, in file order. */
  readonly groups: readonly string[];
  readonly protocol: Protocol;
  readonly via: 'dnat' | 'routed';
  /** The port a client connects to: the host port (dnat) or the container's port (routed). */
  readonly port: number;
  readonly containerPort: number;
  /** The host addresses Docker publishes on (`0.0.0.0`, `::`, `127.0.0.1`, …); dnat only. */
  readonly hostIps?: readonly string[];
  /** How a client elsewhere reaches it, per family. */
  readonly paths: readonly PublicationPath[];
  /** The policy rules that name this port for this container. */
  readonly origins: readonly RuleOrigin[];
}

/**
 * One path a new connection from elsewhere takes to a publication: DNATed by Docker, routed
 * to the container's address, or accepted by docker-proxy on the host.
 */
export interface PublicationPath {
  readonly family: Family;
  readonly path: 'dnat' | 'direct' | 'proxy';
  /** The container's bridge; dnat and direct. */
  readonly outInterface?: string;
  /** The container's address; dnat and direct. */
  readonly destination?: string;
}

/** One group's egress policy as the plan states it: data, rendered in one place. */
export interface EgressExposure {
  readonly group: string;
  readonly containers: readonly string[];
  /** The group's MOAT-EGR chain, when it has one. */
  readonly chain?: string;
  readonly default: 'allow' | 'deny';
  readonly allow: readonly EgressTarget[];
  readonly deny: readonly EgressTarget[];
}

/** `ipset:allowed (443/tcp)` as data: destinations in the policy's words, and ports. */
export interface EgressTarget {
  /** `any`, a CIDR, `ipset:KEY` or `container:GROUP`, as the policy writes them. */
  readonly to: readonly string[];
  /** `443/tcp`, `8000-8100/tcp`; empty: every port. */
  readonly ports: readonly string[];
}

export interface PlanWarning {
  readonly code: string;
  readonly message: string;
  /** `note`: a fact worth saying that needs no action (a port open by the declared default). */
  readonly level?: 'note';
}

/** What the plan needs to say a rule's sources in the policy's words. */
export interface Glossary {
  /** Kernel ipset name → `ipset:KEY`. */
  readonly ipsets: Readonly<Record<string, string>>;
  /** Container address (`172.17.0.3/32`) → `container:GROUP`. */
  readonly addresses: Readonly<Record<string, string>>;
}

export interface DesiredState {
  readonly families: Readonly<Record<Family, DesiredFamily>>;
  readonly ipsets: readonly DesiredIpset[];
  readonly publications: readonly Publication[];
  readonly egress: readonly EgressExposure[];
  readonly glossary: Glossary;
  readonly warnings: readonly PlanWarning[];
}
