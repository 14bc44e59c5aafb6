/**
 * `moat apply`: take the lock, read the host, plan (or check a saved plan), confirm, apply,
 * record the run. The planning and applying code (src/app/apply-locked.ts, with the policy
 * reader and compiler) loads while the host is read.
 */
import { dirname, resolve } from 'node:path';
import { withLock } from '../host/lock.js';
import { openLiveHost } from '../host/read-host.js';
import { driftedObjects } from '../plan/drift.js';
import { recordRun, type RunRecord } from '../state/runs.js';
import type { ApplyOutcome, HostRead } from './apply-locked.js';
import type { Context, HostOptions } from './context.js';
import { refreshMetricsFile } from './metrics-file.js';
import type { LoadedPolicy } from './policy-input.js';

export type LogFormat = 'text' | 'json';

export interface ApplyOptions extends HostOptions {
  readonly file: string;
  readonly lockFile: string;
  readonly lockTimeoutMs: number;
  readonly planFile?: string;
  readonly autoApprove: boolean;
  readonly quiet: boolean;
  readonly detailedExitcode: boolean;
  readonly stateDir: string;
  readonly metricsFile?: string;
  readonly logFormat: LogFormat;
}

async function gitRevision(ctx: Context, file: string): Promise<string | undefined> {
  try {
    const result = await ctx.runner('git', ['-C', dirname(resolve(file)), 'rev-parse', 'HEAD']);
    return result.exitCode === 0 ? result.stdout.trim() : undefined;
  } catch {
    return undefined; // no git on this host
  }
}

/** Records the run and refreshes the metrics file; a failure here never fails the apply. */
async function remember(ctx: Context, options: ApplyOptions, record: RunRecord): Promise<void> {
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

export async function applyCommand(
  ctx: Context,
  options: ApplyOptions,
  /** Told what a pass found and did (watch follows moat's objects with it). */
  observe?: (outcome: ApplyOutcome) => void,
): Promise<number> {
  const started = Date.now();
  const base = {
    time: new Date(started).toISOString(),
    command: `moat apply -f ${options.file}${options.planFile === undefined ? '' : ` ${options.planFile}`}`,
  };
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
    const revision = gitRevision(ctx, options.file); // recorded at the end; asked now
    const [{ applyLocked }, { loadValidPolicy }] = await Promise.all([
      import('./apply-locked.js'),
      import('./policy-input.js'),
    ]);
    let loaded: LoadedPolicy;
    try {
      loaded = await loadValidPolicy(options.file, ctx.io, ctx.color);
    } catch (error) {
      await remember(ctx, options, failed(error));
      throw error;
    }
    let outcome: ApplyOutcome;
    try {
      outcome = await applyLocked(ctx, options, loaded.policy, loaded.sha256, await reading);
    } catch (error) {
      await remember(ctx, options, failed(error, loaded.sha256));
      throw error;
    }
    const gitRevisionNow = await revision;
    const drifted = outcome.changed ? driftedObjects(outcome.plan) : [];
    const record: RunRecord = {
      ...base,
      duration_ms: Date.now() - started,
      result: outcome.changed ? 'changed' : 'unchanged',
      policy_sha256: loaded.sha256,
      ...(gitRevisionNow === undefined ? {} : { git_revision: gitRevisionNow }),
      changes: outcome.changed ? outcome.plan.summary : { add: 0, change: 0, destroy: 0 },
      drift: drifted.length > 0,
      ...(drifted.length > 0 ? { drifted } : {}),
      backend: outcome.backend,
    };
    await remember(ctx, options, record);
    observe?.(outcome);
    if (options.logFormat === 'json') {
      ctx.io.out(JSON.stringify({ level: 'info', event: 'apply', ...record }) + '\n');
    }
    return outcome.exitCode;
  });
}

/** One read of the host, taken under the lock: the plan and the staleness check both use it. */
async function readHost(ctx: Context, options: ApplyOptions): Promise<HostRead> {
  const host = await openLiveHost({ runner: ctx.runner, backend: options.backend, env: ctx.env });
  const [inventory, live] = await Promise.all([host.readInventory(), host.readLive()]);
  return { host, inventory, live };
}
