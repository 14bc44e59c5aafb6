/**
 * The part of `moat apply` that runs on the host read under the lock: plan (or check a saved
 * plan), show it, confirm, apply. Loaded by src/app/apply.ts while the host is being read.
 */
import { applyPlan, StalePlanError } from '../apply/apply.js';
import { ExitCode, UserError } from '../core/errors.js';
import type { Inventory } from '../docker/model.js';
import type { LiveHost } from '../host/read-host.js';
import type { IptablesBackend, LiveNetfilter } from '../netfilter/model.js';
import type { DesiredState } from '../compile/model.js';
import { diff } from '../plan/diff.js';
import { isEmptyPlan, type Plan } from '../plan/model.js';
import { planFromDocument } from '../plan/render-json.js';
import { renderPlanText } from '../plan/render-text.js';
import type { Policy } from '../policy/model.js';
import type { ApplyOptions } from './apply.js';
import { readPlanFile } from './commands.js';
import { changesExit, desiredFor, planFor, type Context } from './context.js';
import { TOOL_VERSION } from './version.js';

export interface ApplyOutcome {
  readonly exitCode: number;
  readonly plan: Plan;
  readonly changed: boolean;
  readonly backend: IptablesBackend;
  /** What moat wants the host to hold: after a successful apply, what it holds. */
  readonly desired: DesiredState;
  /** The host as read before the apply. */
  readonly live: LiveNetfilter;
}

export interface HostRead {
  readonly host: LiveHost;
  readonly inventory: Inventory;
  readonly live: LiveNetfilter;
}

function appliedLine(plan: Plan): string {
  const { add, change, destroy } = plan.summary;
  return `Apply complete: ${add} added, ${change} changed, ${destroy} destroyed.\n`;
}

export async function applyLocked(
  ctx: Context,
  options: ApplyOptions,
  policy: Policy,
  sha256: string,
  { host, inventory, live }: HostRead,
): Promise<ApplyOutcome> {
  const desired = desiredFor(policy, inventory, live);
  let plan: Plan;
  if (options.planFile !== undefined) {
    const saved = planFromDocument(await readPlanFile(options.planFile), options.planFile);
    if (saved.policySha256 !== sha256) {
      throw new StalePlanError(
        `${options.file} changed since ${options.planFile} was made; nothing was applied. Plan again.`,
      );
    }
    if (saved.toolVersion !== TOOL_VERSION) {
      throw new StalePlanError(
        `${options.planFile} was made by moat ${saved.toolVersion ?? '?'}, this is ${TOOL_VERSION}; nothing was applied. Plan again.`,
      );
    }
    // Apply only what moat itself computes now: a saved plan is a confirmation of intent, so
    // a plan file edited by hand (or made for another host state) can never inject a rule.
    plan = diff(desired, live);
    if (JSON.stringify(plan.steps) !== JSON.stringify(saved.plan.steps)) {
      throw new StalePlanError(
        `the host or its containers changed since ${options.planFile} was made (or the file was edited); nothing was applied. Plan again.`,
      );
    }
  } else {
    plan = diff(desired, live);
  }
  const outcome = { plan, backend: host.backend, desired, live };

  const talk = options.logFormat === 'text' && !options.quiet;
  if (talk) ctx.io.out(renderPlanText(plan, { color: ctx.color }));
  if (isEmptyPlan(plan)) return { ...outcome, exitCode: ExitCode.ok, changed: false };
  if (options.planFile === undefined && !options.autoApprove) {
    if (!ctx.io.interactive) {
      throw new UserError(
        'not a terminal: pass --auto-approve to apply without confirmation (nothing was changed)',
        'needs-approval',
      );
    }
    const answer = await ctx.io.ask('\nApply these changes? Only "yes" applies: ');
    if (answer.trim() !== 'yes') {
      ctx.io.err('Apply cancelled; nothing was changed.\n');
      return { ...outcome, exitCode: ExitCode.error, changed: false };
    }
  }
  await applyPlan(
    plan,
    {
      runner: ctx.runner,
      backend: host.backend,
      readLive: () => host.readLive(),
      replan: (after) => planFor(policy, inventory, after),
    },
    live,
  );
  if (options.logFormat === 'text') ctx.io.out(appliedLine(plan));
  return { ...outcome, exitCode: changesExit(true, options.detailedExitcode), changed: true };
}
