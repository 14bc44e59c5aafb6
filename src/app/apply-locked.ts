/**
 * The part of `moat apply` that runs on the host read under the lock: plan (or check a saved
 * plan), show it, confirm, apply. Loaded by src/app/apply.ts while the host is being read.
 */
import { applyPlan, StalePlanError } from '../apply/apply.js';
import { ExitCode, UserError } from '../core/errors.js';
import type { Inventory } from '../docker/model.js';
import type { LiveHost } from '../host/read-host.js';
import type { HostSystem } from '../host/system.js';
import type { IptablesBackend, LiveNetfilter } from '../netfilter/model.js';
import { isEmptyPlan, type Plan } from '../plan/model.js';
import { renderPlanText } from '../plan/render-text.js';
import type { ApplyOptions } from './apply-options.js';
import type { DesiredState } from '../compile/model.js';
import {
  changesExit,
  desiredAndPlan,
  planFor,
  withListenerNames,
  type Context,
} from './context.js';
import type { LoadedPolicy } from './policy-input.js';
import { policyName } from './policy-path.js';
import type { SavedPlan } from './saved-plan.js';
import { TOOL_VERSION } from './version.js';

export interface ApplyOutcome {
  readonly exitCode: number;
  readonly plan: Plan;
  /** What the host holds now (or should: a cancelled apply): whose counters the metrics show. */
  readonly desired: DesiredState;
  readonly changed: boolean;
  readonly backend: IptablesBackend;
  /** The host as read before the apply. */
  readonly live: LiveNetfilter;
}

export interface HostRead {
  readonly host: LiveHost;
  readonly inventory: Inventory;
  readonly live: LiveNetfilter;
  /** Interfaces and listening sockets, their owners named for the ports the policy names. */
  readonly system: HostSystem;
}

function appliedLine(plan: Plan): string {
  const { add, change, destroy } = plan.summary;
  return `Apply complete: ${add} added, ${change} changed, ${destroy} destroyed.\n`;
}

/**
 * The plan to apply. A saved plan is a confirmation of intent: moat applies only what it
 * computes now, and only if that equals the saved plan, so a plan file edited by hand (or made
 * for another host state) can never inject a rule.
 */
function currentPlan(
  policy: LoadedPolicy,
  saved: SavedPlan | undefined,
  { inventory, live, system }: HostRead,
): { plan: Plan; desired: DesiredState } {
  const { desired, plan } = desiredAndPlan(policy.policy, inventory, live, system);
  if (saved === undefined) return { plan, desired };
  if (saved.origin.policySha256 !== policy.sha256) {
    throw new StalePlanError(
      `${policyName(policy.path)} changed since ${saved.name} was made; nothing was applied. Plan again.`,
    );
  }
  if (saved.origin.toolVersion !== TOOL_VERSION) {
    throw new StalePlanError(
      `${saved.name} was made by moat ${saved.origin.toolVersion ?? '?'}, this is ${TOOL_VERSION}; nothing was applied. Plan again.`,
    );
  }
  if (JSON.stringify(plan.steps) !== JSON.stringify(saved.plan.steps)) {
    throw new StalePlanError(
      `the host or its containers changed since ${saved.name} was made (or the file was edited); nothing was applied. Plan again.`,
    );
  }
  return { plan, desired };
}

/** Asks on a terminal unless approved already; false when the answer is not "yes". */
async function approved(ctx: Context, options: ApplyOptions): Promise<boolean> {
  if (options.planFile !== undefined || options.autoApprove) return true;
  if (!ctx.io.interactive) {
    throw new UserError(
      'not a terminal: pass --auto-approve to apply without confirmation (nothing was changed)',
      'needs-approval',
    );
  }
  const answer = await ctx.io.ask('\nApply these changes? Only "yes" applies: ');
  return answer.trim() === 'yes';
}

export async function applyLocked(
  ctx: Context,
  options: ApplyOptions,
  policy: LoadedPolicy,
  saved: SavedPlan | undefined,
  raw: HostRead,
): Promise<ApplyOutcome> {
  const read = { ...raw, system: await withListenerNames(policy.policy, raw.system) };
  const { host, inventory, live } = read;
  const { plan, desired } = currentPlan(policy, saved, read);
  if (!options.quiet) ctx.view.note(renderPlanText(plan, { color: ctx.view.color }));
  const outcome = (exitCode: number, changed: boolean): ApplyOutcome => ({
    exitCode,
    plan,
    desired,
    changed,
    backend: host.backend,
    live,
  });
  if (isEmptyPlan(plan)) return outcome(ExitCode.ok, false);
  if (!(await approved(ctx, options))) {
    ctx.io.err('Apply cancelled; nothing was changed.\n');
    return outcome(ExitCode.error, false);
  }
  await applyPlan(
    plan,
    {
      runner: ctx.runner,
      backend: host.backend,
      readLive: () => host.readLive(),
      replan: (after) => planFor(policy.policy, inventory, after, read.system),
    },
    live,
  );
  ctx.view.note(appliedLine(plan));
  return outcome(changesExit(true, options.detailedExitcode), true);
}
