/**
 * The plan: an ordered list of steps, each with a kind and a reason. Text and JSON are two
 * renderings of this one model; apply executes it.
 */
import type { Family, IpsetType } from '../policy/model.js';
import type {
  EgressExposure,
  Glossary,
  PlanWarning,
  Publication,
  PublicationPath,
  RuleOrigin,
} from '../compile/model.js';
import type { Reach } from './reach.js';

export const PLAN_FORMAT_VERSION = 2;

/** Why a step is needed. */
export type StepReason =
  /** firewall.yaml or the running containers changed. */
  | 'policy'
  /** Someone or something changed moat's objects on the host since the last apply. */
  | 'drift';

/** A rule moat writes: its id, its spec, and the exact line it writes (comment included). */
export interface PlannedRule {
  readonly id: string;
  readonly spec: string;
  readonly line: string;
}

export interface ChainEdits {
  readonly delete: readonly number[];
  readonly insert: readonly { readonly position: number; readonly rule: PlannedRule }[];
}

export type PlanStep =
  | {
      readonly kind: 'create-set';
      readonly reason: StepReason;
      readonly set: string;
      readonly type: IpsetType;
      readonly family: Family;
      readonly members: readonly string[];
    }
  | {
      readonly kind: 'update-set';
      readonly reason: StepReason;
      readonly set: string;
      readonly type: IpsetType;
      readonly family: Family;
      /** The full new member list; `add`/`remove` say what differs. */
      readonly members: readonly string[];
      readonly add: readonly string[];
      readonly remove: readonly string[];
    }
  | { readonly kind: 'destroy-set'; readonly reason: StepReason; readonly set: string }
  | {
      readonly kind: 'create-chain';
      readonly reason: StepReason;
      readonly family: Family;
      readonly chain: string;
      readonly rules: readonly PlannedRule[];
    }
  | {
      readonly kind: 'update-chain';
      readonly reason: StepReason;
      readonly family: Family;
      readonly chain: string;
      /** The chain's complete new content. */
      readonly rules: readonly PlannedRule[];
      readonly add: readonly PlannedRule[];
      /** Live rule specs that go (moat's own, or foreign rules someone put in moat's chain). */
      readonly remove: readonly string[];
      /** True when the same rules stand in another order. */
      readonly reordered: boolean;
      /**
       * In-place edits that keep unchanged rules (and their packet counters): delete these
       * live positions (1-based, descending), then insert rules at their final positions
       * (ascending). Absent when the kept rules are out of order: the chain is rewritten.
       */
      readonly edits?: ChainEdits;
    }
  | {
      readonly kind: 'delete-chain';
      readonly reason: StepReason;
      readonly family: Family;
      readonly chain: string;
      readonly remove: readonly string[];
    }
  | {
      readonly kind: 'add-jump' | 'move-jump';
      readonly reason: StepReason;
      readonly family: Family;
      readonly hook: string;
      readonly rule: PlannedRule;
      /** moat's rules in the hook chain that go first, by their full live spec. */
      readonly remove: readonly string[];
    }
  | {
      readonly kind: 'remove-jump';
      readonly reason: StepReason;
      readonly family: Family;
      readonly hook: string;
      readonly remove: readonly string[];
    };

export type StepKind = PlanStep['kind'];

export interface PlanSummary {
  readonly add: number;
  readonly change: number;
  readonly destroy: number;
}

export interface Plan {
  readonly formatVersion: typeof PLAN_FORMAT_VERSION;
  /** A digest of the live objects moat owns, as read when planning. */
  readonly fingerprint: string;
  readonly steps: readonly PlanStep[];
  readonly summary: PlanSummary;
  /** Who may reach each published port before and after the plan, computed from the rules. */
  readonly exposures: readonly PortReach[];
  /** What each group with egress rules may reach under the new policy. */
  readonly egress: readonly EgressExposure[];
  /** Kernel names → the policy's words, for saying sources. */
  readonly glossary: Glossary;
  readonly warnings: readonly PlanWarning[];
  /** The digests recorded in the host after this plan is applied, per family. */
  readonly digests: Readonly<Record<Family, string>>;
}

/** One path to a publication, and who passes moat's rules on it before and after the plan. */
export interface PathReach extends PublicationPath {
  readonly now: Reach;
  readonly was: Reach;
}

/** A published port and who may reach it, before and after the plan. */
export interface PortReach {
  readonly container: string;
  readonly groups: Publication['groups'];
  readonly protocol: Publication['protocol'];
  readonly via: Publication['via'];
  readonly port: number;
  readonly containerPort: number;
  readonly hostIps?: readonly string[];
  readonly paths: readonly PathReach[];
  readonly origins: readonly RuleOrigin[];
}

export function isEmptyPlan(plan: Plan): boolean {
  return plan.steps.length === 0;
}
