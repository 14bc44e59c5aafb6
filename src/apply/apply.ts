/**
 * Apply a plan: ipsets first, then one iptables-restore --noflush transaction per family (when
 * both families change, both checked with --test before either commits), then ipset
 * destruction; verify by reading back what the plan wrote; on any failure put back what moat
 * owned before and say so.
 */
import { MoatError, ExitCode, SubprocessError } from '../core/errors.js';
import { runChecked, type CommandRunner } from '../core/runner.js';
import type { IptablesBackend, LiveNetfilter } from '../netfilter/model.js';
import { renderRestore, type RestoreScripts } from './render-restore.js';
import { toolFor } from '../netfilter/backend.js';
import { diff, fingerprint } from '../plan/diff.js';
import { isEmptyPlan, type Plan } from '../plan/model.js';
import { FAMILIES, type Family } from '../policy/model.js';
import { plural } from '../core/words.js';
import { desiredFromLive } from './from-live.js';
import { readAfter } from './verify.js';

export interface ApplyEnvironment {
  readonly runner: CommandRunner;
  readonly backend: IptablesBackend;
  /**
   * A fresh read of the host: for a plan given without its read, and for rollback. It must read
   * what `current` covers, no less and no more: rollback puts back the objects of `current` and
   * removes moat's objects it finds beyond them (watch's repair reads only part of moat's).
   */
  readonly readLive: () => Promise<LiveNetfilter>;
  /** The plan the policy gives for a given live state (empty when the host matches). */
  readonly replan: (live: LiveNetfilter) => Plan;
  /**
   * Rules in each family's filter table at the last full read, when the state the plan was
   * made from is not a full read (watch's look): how the verification lists chains.
   */
  readonly tableRules?: Partial<Record<Family, number>>;
  /** Told when the writes have committed, before the verification reads them back. */
  readonly written?: () => void;
}

export interface ApplyResult {
  /** False when the plan was empty and nothing was written. */
  readonly changed: boolean;
}

export class StalePlanError extends MoatError {
  constructor(message: string) {
    super(message, { code: 'stale-plan', exitCode: ExitCode.stalePlan });
  }
}

export class ApplyFailedError extends MoatError {
  constructor(message: string, cause: unknown) {
    super(message, { code: 'apply-failed', cause });
  }
}

/** Programs that write the firewall hold the apply lock until they end (src/host/lock.ts). */
const WRITES = { holdsLock: true } as const;

/**
 * One restore transaction per family that has changes; `--test` only checks them. The two
 * families run at once: on nft each is its own table's transaction; on legacy `-w` queues them
 * on the xtables lock. Both are waited for before a failure is reported, so a rollback never
 * reads while a transaction still runs.
 */
async function restoreFamilies(
  env: ApplyEnvironment,
  scripts: RestoreScripts,
  mode: 'test' | 'commit',
): Promise<void> {
  const args = mode === 'test' ? ['--noflush', '--test', '-w', '5'] : ['--noflush', '-w', '5'];
  const runs = FAMILIES.flatMap((family) => {
    const script = scripts.families[family];
    return script === undefined
      ? []
      : [runChecked(env.runner, toolFor(env.backend, family, 'restore'), args, script, WRITES)];
  });
  const settled = await Promise.allSettled(runs);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

async function runScripts(
  env: ApplyEnvironment,
  scripts: RestoreScripts,
  options: { test: boolean } = { test: false },
): Promise<void> {
  if (scripts.ipsetBefore !== undefined)
    await runChecked(env.runner, 'ipset', ['restore'], scripts.ipsetBefore, WRITES);
  // Both families are checked before either commits, so one cannot commit while the other is
  // refused. Checked after the new sets exist, since rules may reference them. One family alone
  // needs no check: its restore is one transaction that commits all of it or nothing.
  const families = FAMILIES.filter((family) => scripts.families[family] !== undefined);
  if (options.test && families.length > 1) await restoreFamilies(env, scripts, 'test');
  await restoreFamilies(env, scripts, 'commit');
  if (scripts.ipsetAfter !== undefined)
    await runChecked(env.runner, 'ipset', ['restore'], scripts.ipsetAfter, WRITES);
}

function describe(error: unknown): string {
  if (error instanceof SubprocessError) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/** Puts back the objects moat owned in `before`; returns whether the host now matches it. */
async function rollBack(env: ApplyEnvironment, before: LiveNetfilter): Promise<boolean> {
  const wanted = desiredFromLive(before);
  const current = await env.readLive();
  const back = diff(wanted, current);
  const scripts = renderRestore(back);
  // Best effort, step by step: each transaction is atomic on its own.
  try {
    await runScripts(env, scripts);
  } catch {
    // fall through to the check below, which tells the truth either way
  }
  return fingerprint(await env.readLive()) === fingerprint(before);
}

/**
 * Applies `plan`, computed from a host whose fingerprint it records. Refuses when the host has
 * changed since (exit 3). Writes nothing for an empty plan.
 */
export async function applyPlan(
  plan: Plan,
  env: ApplyEnvironment,
  /** The host as read under the same lock the plan was made under; read afresh if absent. */
  current?: LiveNetfilter,
): Promise<ApplyResult> {
  if (isEmptyPlan(plan)) return { changed: false };
  const before = current ?? (await env.readLive());
  if (fingerprint(before) !== plan.fingerprint) {
    throw new StalePlanError(
      'the objects moat owns on the host changed since this plan was made; nothing was applied. Plan again.',
    );
  }
  const scripts = renderRestore(plan);

  let failure: unknown;
  try {
    await runScripts(env, scripts, { test: true });
    env.written?.();
    // Read back only what the plan wrote; the rest is as `before` was read, under the lock.
    const after = env.replan(
      await readAfter(env.runner, env.backend, plan, before, env.tableRules),
    );
    if (!isEmptyPlan(after)) {
      failure = new Error(
        `verification failed: after applying, the host still differs from the policy (${plural(after.steps.length, 'step')} left)`,
      );
    }
  } catch (error) {
    failure = error;
  }
  if (failure === undefined) return { changed: true };

  const restored = await rollBack(env, before);
  throw new ApplyFailedError(
    `apply failed: ${describe(failure)}\n` +
      (restored
        ? 'moat put back the rules and ipsets it owned before this run; the host is as it was.'
        : 'moat could not put back everything it owned before this run; run `moat plan` to see the host.'),
    failure,
  );
}
