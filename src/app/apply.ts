/**
 * `moat apply`: take the lock, read the host, plan (or check a saved plan), confirm, apply,
 * record the run. The planning and applying code (src/app/apply-locked.ts, with the policy
 * reader and compiler) loads while the host is read.
 */
import { dirname } from 'node:path';
import { UserError } from '../core/errors.js';
import { withLock } from '../host/lock.js';
import { openHost } from './host-state.js';
import type { DropReport } from '../plan/drops.js';
import { driftedObjects } from '../plan/drift.js';
import type { RunRecord } from '../state/runs.js';
import type { ApplyOutcome, HostRead } from './apply-locked.js';
import { DEFAULT_POLICY_FILE, type ApplyOptions } from './apply-options.js';
import type { Context } from './context.js';
import { rememberRun } from './metrics-file.js';
import type { LoadedPolicy } from './policy-input.js';
import { policyPath, STDIN, type PolicySource } from './policy-path.js';
import type { SavedPlan } from './saved-plan.js';

export type { ApplyOptions } from './apply-options.js';

async function gitRevision(ctx: Context, path: string): Promise<string | undefined> {
  if (path === STDIN) return undefined;
  try {
    const result = await ctx.runner('git', ['-C', dirname(path), 'rev-parse', 'HEAD']);
    return result.exitCode === 0 ? result.stdout.trim() : undefined;
  } catch {
    return undefined; // no git on this host
  }
}

/** The counters of the rules the host holds after the run, for the metrics file. */
async function dropsAfter(
  ctx: Context,
  read: HostRead,
  outcome: ApplyOutcome,
): Promise<DropReport | undefined> {
  try {
    const { readDropReport } = await import('./drop-counters.js');
    return await readDropReport(read.host.runner, read.host.backend, outcome.desired, read.live);
  } catch (error) {
    ctx.view.warn(`could not read drop counters: ${(error as Error).message}`);
    return undefined;
  }
}

/**
 * Which policy to apply: `-f` when given; else the one a saved plan was made from (its file,
 * or the text it carries when it was made from standard input); else firewall.yaml.
 */
function policySource(options: ApplyOptions, saved: SavedPlan | undefined): PolicySource {
  if (options.file !== undefined) return { file: options.file };
  const { policyPath, policyText } = saved?.origin ?? {};
  if (policyPath === undefined) return { file: DEFAULT_POLICY_FILE };
  if (policyPath === STDIN) {
    if (policyText === undefined)
      throw new UserError(`${saved?.name ?? ''}: not a complete moat plan file`, 'bad-plan-file');
    return { text: policyText, path: STDIN };
  }
  return { file: policyPath };
}

/** The saved plan (if any) and the policy, read under the lock while the host is read. */
async function readInputs(
  ctx: Context,
  options: ApplyOptions,
): Promise<{ saved: SavedPlan | undefined; policy: LoadedPolicy }> {
  if (options.file === STDIN && options.planFile === STDIN)
    throw new UserError('the policy and the plan cannot both come from standard input');
  const [{ readSavedPlan }, { loadValidPolicy }] = await Promise.all([
    import('./saved-plan.js'),
    import('./policy-input.js'),
  ]);
  const saved =
    options.planFile === undefined ? undefined : await readSavedPlan(ctx.io, options.planFile);
  return { saved, policy: await loadValidPolicy(ctx, policySource(options, saved)) };
}

function commandLine(options: ApplyOptions): string {
  const file = options.file === undefined ? '' : ` -f ${options.file}`;
  return `moat apply${file}${options.planFile === undefined ? '' : ` ${options.planFile}`}`;
}

export async function applyCommand(
  ctx: Context,
  options: ApplyOptions,
  /** Told what a pass found and did (watch follows moat's objects with it). */
  observe?: (outcome: ApplyOutcome) => void,
): Promise<number> {
  const started = Date.now();
  const base = { time: new Date(started).toISOString(), command: commandLine(options) };
  const failed = (error: unknown, sha256?: string): RunRecord => ({
    ...base,
    duration_ms: Date.now() - started,
    result: 'failed',
    ...(sha256 === undefined ? {} : { policy_sha256: sha256 }),
    changes: { add: 0, change: 0, destroy: 0 },
    drift: false,
    error: error instanceof Error ? error.message : String(error),
  });
  // Lock, then read the host (under the lock) while the policy is parsed: the two overlap.
  // A busy lock means another run is doing the work: nothing to record. The run is recorded
  // under the lock, so runs finishing together never lose a record.
  return withLock(options.lockFile, options.lockTimeoutMs, base.command, async () => {
    const reading = readHost(ctx, options);
    reading.catch(() => undefined); // awaited below once the policy is valid
    const locked = import('./apply-locked.js');
    // Recorded at the end; asked now when the policy file is already known.
    const early =
      options.planFile === undefined
        ? gitRevision(ctx, policyPath(options.file ?? DEFAULT_POLICY_FILE))
        : undefined;
    let inputs: Awaited<ReturnType<typeof readInputs>>;
    try {
      inputs = await readInputs(ctx, options);
    } catch (error) {
      await rememberRun(ctx, options, failed(error));
      throw error;
    }
    const { saved, policy } = inputs;
    const revision = early ?? gitRevision(ctx, policy.path);
    let outcome: ApplyOutcome;
    let read: HostRead;
    try {
      read = await reading;
      outcome = await (await locked).applyLocked(ctx, options, policy, saved, read);
    } catch (error) {
      await rememberRun(ctx, options, failed(error, policy.sha256));
      throw error;
    }
    const gitRevisionNow = await revision;
    const drifted = outcome.changed ? driftedObjects(outcome.plan) : [];
    const record: RunRecord = {
      ...base,
      duration_ms: Date.now() - started,
      result: outcome.changed ? 'changed' : 'unchanged',
      policy_sha256: policy.sha256,
      ...(gitRevisionNow === undefined ? {} : { git_revision: gitRevisionNow }),
      changes: outcome.changed ? outcome.plan.summary : { add: 0, change: 0, destroy: 0 },
      drift: drifted.length > 0,
      ...(drifted.length > 0 ? { drifted } : {}),
      backend: outcome.backend,
    };
    const drops =
      options.metricsFile === undefined ? undefined : await dropsAfter(ctx, read, outcome);
    await rememberRun(ctx, options, record, drops);
    observe?.(outcome);
    ctx.view.event('apply', { ...record });
    return outcome.exitCode;
  });
}

/** One read of the host, taken under the lock: the plan and the staleness check both use it. */
async function readHost(ctx: Context, options: ApplyOptions): Promise<HostRead> {
  const host = await openHost(ctx, options.backend);
  const { inventory, live, system } = await host.readState();
  return { host, inventory, live, system: system ?? {} };
}
