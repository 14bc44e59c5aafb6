/**
 * watch's quick repair: put moat's objects back to what the last pass applied, without a full
 * reconcile. Under the apply lock it reads only moat's chains, hooks and sets, plans against
 * the desired state that pass left, applies and verifies as `moat apply` does (rolling back on
 * failure), and records the run. No Docker API call, no policy parse, no full ruleset read: on a
 * big host this is most of a pass's time. What changed in the policy or in Docker since that
 * pass is left to the next pass (Docker events, the interval), as before.
 */
import { applyPlan } from '../apply/apply.js';
import type { DesiredState } from '../compile/model.js';
import { withLock } from '../host/lock.js';
import { readOwned } from '../host/read-owned.js';
import type { IptablesBackend } from '../netfilter/model.js';
import { readLiveNetfilter } from '../netfilter/read.js';
import { diff } from '../plan/diff.js';
import { describeStep } from '../plan/drift.js';
import { isEmptyPlan, type Plan } from '../plan/model.js';
import type { Family } from '../policy/model.js';
import { recordRun, type RunRecord } from '../state/runs.js';
import type { Context } from './context.js';
import { refreshMetricsFile } from './metrics-file.js';

export interface RepairTarget {
  readonly desired: DesiredState;
  readonly backend: IptablesBackend;
  /** Rules in each family's filter table at the last full read (how to list chains). */
  readonly tableRules: Partial<Record<Family, number>>;
}

export interface RepairOptions {
  readonly lockFile: string;
  readonly lockTimeoutMs: number;
  readonly stateDir: string;
  readonly metricsFile?: string;
}

/** The plan that was applied (empty: nothing needed repair by the time the lock was held). */
export async function repairOwned(
  ctx: Context,
  options: RepairOptions,
  target: RepairTarget,
): Promise<Plan> {
  const command = 'moat watch (repair)';
  return withLock(options.lockFile, options.lockTimeoutMs, command, async () => {
    const started = Date.now();
    const { desired, backend } = target;
    const live = await readOwned(ctx.runner, backend, desired, target.tableRules);
    const plan = diff(desired, live);
    if (isEmptyPlan(plan)) return plan;
    const base = { time: new Date(started).toISOString(), command, backend };
    try {
      await applyPlan(
        plan,
        {
          runner: ctx.runner,
          backend,
          readLive: () => readLiveNetfilter(ctx.runner, backend),
          replan: (after) => diff(desired, after),
        },
        live,
      );
    } catch (error) {
      await remember(ctx, options, {
        ...base,
        duration_ms: Date.now() - started,
        result: 'failed',
        changes: { add: 0, change: 0, destroy: 0 },
        drift: false,
        error: error instanceof Error ? error.message : String(error),
      });
      throw error;
    }
    await remember(ctx, options, {
      ...base,
      duration_ms: Date.now() - started,
      result: 'changed',
      changes: plan.summary,
      // Everything it put back was changed outside moat, whatever the plan's reasons say (a
      // table rewritten without moat's objects loses the marker that tells drift apart).
      drift: true,
      drifted: plan.steps.map(describeStep),
    });
    return plan;
  });
}

async function remember(ctx: Context, options: RepairOptions, record: RunRecord): Promise<void> {
  try {
    await recordRun(options.stateDir, record);
    if (options.metricsFile !== undefined) {
      await refreshMetricsFile(options.stateDir, options.metricsFile, record.backend);
    }
  } catch (error) {
    ctx.io.err(
      `moat: warning: could not record this run in ${options.stateDir}: ${(error as Error).message}\n`,
    );
  }
}
