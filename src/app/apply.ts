/** `moat apply`: plan (or check a saved plan), confirm, apply under the lock, record the run. */
import { dirname, resolve } from 'node:path';
import { applyPlan, StalePlanError } from '../apply/apply.js';
import { ExitCode, UserError } from '../core/errors.js';
import { withLock } from '../host/lock.js';
import { openLiveHost, type LiveHost } from '../host/read-host.js';
import type { Inventory } from '../docker/model.js';
import type { LiveNetfilter } from '../netfilter/model.js';
import { isEmptyPlan, type Plan } from '../plan/model.js';
import { planFromDocument } from '../plan/render-json.js';
import { renderPlanText } from '../plan/render-text.js';
import type { Policy } from '../policy/model.js';
import { renderMetrics } from '../state/metrics.js';
import { readHistory, recordRun, writeAtomically, type RunRecord } from '../state/runs.js';
import { readPlanFile } from './commands.js';
import { changesExit, planFor, type Context, type HostOptions } from './context.js';
import { loadValidPolicy, type LoadedPolicy } from './policy-input.js';
import { TOOL_VERSION } from './version.js';

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

interface ApplyOutcome {
  readonly exitCode: number;
  readonly plan: Plan;
  readonly changed: boolean;
  readonly backend: string;
}

function appliedLine(plan: Plan): string {
  const { add, change, destroy } = plan.summary;
  return `Apply complete: ${add} added, ${change} changed, ${destroy} destroyed.\n`;
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
      const history = await readHistory(options.stateDir);
      const metrics = renderMetrics(history, {
        version: TOOL_VERSION,
        backend: record.backend ?? 'unknown',
      });
      await writeAtomically(options.metricsFile, metrics);
    }
  } catch (error) {
    ctx.io.err(
      `moat: warning: could not record this run in ${options.stateDir}: ${(error as Error).message}\n`,
    );
  }
}

export async function applyCommand(ctx: Context, options: ApplyOptions): Promise<number> {
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
    const revision = await gitRevision(ctx, options.file);
    const record: RunRecord = {
      ...base,
      duration_ms: Date.now() - started,
      result: outcome.changed ? 'changed' : 'unchanged',
      policy_sha256: loaded.sha256,
      ...(revision === undefined ? {} : { git_revision: revision }),
      changes: outcome.changed ? outcome.plan.summary : { add: 0, change: 0, destroy: 0 },
      drift: outcome.changed && outcome.plan.steps.some((step) => step.reason === 'drift'),
      backend: outcome.backend,
    };
    await remember(ctx, options, record);
    if (options.logFormat === 'json') {
      ctx.io.out(JSON.stringify({ level: 'info', event: 'apply', ...record }) + '\n');
    }
    return outcome.exitCode;
  });
}

interface HostRead {
  readonly host: LiveHost;
  readonly inventory: Inventory;
  readonly live: LiveNetfilter;
}

/** One read of the host, taken under the lock: the plan and the staleness check both use it. */
async function readHost(ctx: Context, options: ApplyOptions): Promise<HostRead> {
  const host = await openLiveHost({ runner: ctx.runner, backend: options.backend, env: ctx.env });
  const [inventory, live] = await Promise.all([host.readInventory(), host.readLive()]);
  return { host, inventory, live };
}

async function applyLocked(
  ctx: Context,
  options: ApplyOptions,
  policy: Policy,
  sha256: string,
  { host, inventory, live }: HostRead,
): Promise<ApplyOutcome> {
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
    plan = planFor(policy, inventory, live);
    if (JSON.stringify(plan.steps) !== JSON.stringify(saved.plan.steps)) {
      throw new StalePlanError(
        `the host or its containers changed since ${options.planFile} was made (or the file was edited); nothing was applied. Plan again.`,
      );
    }
  } else {
    plan = planFor(policy, inventory, live);
  }

  const talk = options.logFormat === 'text' && !options.quiet;
  if (talk) ctx.io.out(renderPlanText(plan, { color: ctx.color }));
  if (isEmptyPlan(plan))
    return { exitCode: ExitCode.ok, plan, changed: false, backend: host.backend };
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
      return { exitCode: ExitCode.error, plan, changed: false, backend: host.backend };
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
  return {
    exitCode: changesExit(true, options.detailedExitcode),
    plan,
    changed: true,
    backend: host.backend,
  };
}
