/**
 * watch's look and quick repair: under the apply lock, read only moat's chains, hooks and sets,
 * compare them with the desired state the last pass applied, and, when the caller decides to,
 * put them back: apply and verify as `moat apply` does (rolling back on failure, only what the
 * look read) from that same read, and record the run. No Docker API call, no policy parse, no
 * full ruleset read: on a big host those are most of a pass's time. What changed in the policy
 * or in Docker since that pass is left to the next pass (Docker events, the interval), as
 * before.
 */
import { applyPlan } from '../apply/apply.js';
import type { DesiredState } from '../compile/model.js';
import { withLock } from '../host/lock.js';
import { readOwned } from '../host/read-owned.js';
import type { IptablesBackend } from '../netfilter/model.js';
import { diff } from '../plan/diff.js';
import { describeStep } from '../plan/drift.js';
import { isEmptyPlan } from '../plan/model.js';
import type { Family } from '../policy/model.js';
import { scopeDesired, type LookScope } from '../watch/scope.js';
import type { Context } from './context.js';
import { rememberRun } from './metrics-file.js';

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

export interface Inspection {
  /** What differed from the desired state, described (`add-jump ipv4 DOCKER-USER`); empty: nothing. */
  readonly drift: readonly string[];
  /** Whether it was put back. */
  readonly repaired: boolean;
  /** Where a repair's time went, in ms: waiting for the lock, reading, writing, verifying. */
  readonly stages: RepairStages;
}

export interface RepairStages {
  readonly lock: number;
  readonly read: number;
  readonly write?: number;
  readonly verify?: number;
}

/**
 * Looks at the objects in `scope`, tells `decide` what differs (an empty list when nothing
 * does), and repairs when it says so. Throws when the host cannot be read, or when the repair
 * failed (after rolling back, and recording the failed run).
 */
export async function inspectAndRepair(
  ctx: Context,
  options: RepairOptions,
  target: RepairTarget,
  scope: LookScope,
  decide: (drift: readonly string[]) => boolean,
): Promise<Inspection> {
  const command = 'moat watch (repair)';
  const asked = Date.now();
  return withLock(options.lockFile, options.lockTimeoutMs, command, async () => {
    const started = Date.now();
    const { backend } = target;
    const desired = scopeDesired(target.desired, scope);
    const live = await readOwned(ctx.runner, backend, desired, target.tableRules);
    const plan = diff(desired, live);
    const drift = plan.steps.map(describeStep);
    const read = Date.now();
    const looked = { lock: started - asked, read: read - started };
    // Always asked, also when nothing differs: the caller learns what the look found.
    if (!decide(drift) || isEmptyPlan(plan)) return { drift, repaired: false, stages: looked };
    const base = { time: new Date(started).toISOString(), command, backend };
    let written = read;
    try {
      await applyPlan(
        plan,
        {
          runner: ctx.runner,
          backend,
          // Rollback compares with `live`, which holds only what this look read: read the same
          // again, or everything moat owns outside the look would count as not there before.
          readLive: () => readOwned(ctx.runner, backend, desired, target.tableRules),
          replan: (after) => diff(desired, after),
          tableRules: target.tableRules,
          written: () => {
            written = Date.now();
          },
        },
        live,
      );
    } catch (error) {
      await rememberRun(ctx, options, {
        ...base,
        duration_ms: Date.now() - started,
        result: 'failed',
        changes: { add: 0, change: 0, destroy: 0 },
        drift: false,
        error: error instanceof Error ? error.message : String(error),
      });
      throw error;
    }
    const verified = Date.now();
    await rememberRun(ctx, options, {
      ...base,
      duration_ms: verified - started,
      result: 'changed',
      changes: plan.summary,
      // Everything it put back was changed outside moat, whatever the plan's reasons say (a
      // table rewritten without moat's objects loses the marker that tells drift apart).
      drift: true,
      drifted: drift,
    });
    const stages = { ...looked, write: written - read, verify: verified - written };
    return { drift, repaired: true, stages };
  });
}
