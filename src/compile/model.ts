/** What moat wants the host to hold: its owned chains, jumps and ipsets, per family. */
import type { Family, IpsetType } from '../policy/model.js';

/**
 * The policy entry a rule was compiled from, so `moat explain` can name the policy line: a
 * path into the policy document (`['containers', 'ghost', 'ingress', 0, 'from', 1]`) that a
 * Locator turns into line and column.
 */
export interface RuleOrigin {
  readonly path: readonly (string | number)[];
  /** `ghost ingress 2368/tcp`, `ghost ingress from 198.51.100.0/24`, `webapp egress deny`. */
  readonly what: string;
}

/** A rule moat owns. `id` is a short hash of the chain and spec, carried as `moat:<id>`. */
export interface OwnedRule {
  readonly chain: string;
  /** The rule without its comment, in the form moat renders it. */
  readonly spec: string;
  readonly id: string;
  /** The full text after `-A <chain> ` that moat writes, its comment included. */
  readonly line: string;
  /** The policy entry that made the rule (the first one, when several made the same rule). */
  readonly origin?: RuleOrigin;
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

/** How a published port is reachable, for the plan's words. */
export interface PortExposure {
  readonly group?: string;
  /** `2368/tcp`, `8000-8100/tcp`. */
  readonly port: string;
  /** `host only`, `anyone`, `host, 198.51.100.0/24, ipset:office`. */
  readonly reach: string;
}

/** What a group's containers may reach, for the plan's words. */
export interface EgressExposure {
  readonly group: string;
  readonly containers: readonly string[];
  /** The group's MOAT-EGR chain, to tell whether a plan touches it. */
  readonly chain: string;
  /** `may not reach 192.0.2.0/24`, `may reach only ipset:allowed (443/tcp); never 10.0.0.0/8`. */
  readonly reach: string;
}

export interface PlanWarning {
  readonly code: string;
  readonly message: string;
}

export interface DesiredState {
  readonly families: Readonly<Record<Family, DesiredFamily>>;
  readonly ipsets: readonly DesiredIpset[];
  readonly exposures: readonly PortExposure[];
  readonly egress: readonly EgressExposure[];
  readonly warnings: readonly PlanWarning[];
}
