/**
 * The use cases behind the CLI: validate, plan, apply, show, snapshot. Each takes parsed
 * options and an Io, and returns the exit code.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { compile } from '../compile/compile.js';
import { ExitCode, UserError } from '../core/errors.js';
import type { CommandRunner } from '../core/runner.js';
import type { Inventory } from '../docker/model.js';
import { resolveDockerEndpoint } from '../docker/endpoint.js';
import { readInventory } from '../docker/inventory.js';
import { initialPolicy } from '../init/generate.js';
import { applyPlan, StalePlanError } from '../apply/apply.js';
import { withLock } from '../host/lock.js';
import { renderMetrics } from '../state/metrics.js';
import {
  lastWhere,
  readHistory,
  recordRun,
  writeAtomically,
  type RunRecord,
} from '../state/runs.js';
import { hostFacts } from '../compile/host-facts.js';
import { openLiveHost } from '../host/read-host.js';
import { readSnapshot, writeSnapshot } from '../host/snapshot.js';
import type { BackendChoice } from '../netfilter/backend.js';
import type { LiveNetfilter } from '../netfilter/model.js';
import { diff } from '../plan/diff.js';
import { isEmptyPlan, type Plan } from '../plan/model.js';
import { planDocument, planFromDocument, renderPlanJson } from '../plan/render-json.js';
import { renderPlanText } from '../plan/render-text.js';
import { formatDiagnostic } from '../policy/format.js';
import { loadPolicyFile } from '../policy/load.js';
import type { Policy } from '../policy/model.js';
import type { Io } from './io.js';
import { loadValidPolicy, type LoadedPolicy } from './policy-input.js';
import { TOOL_VERSION } from './version.js';

export interface Context {
  readonly io: Io;
  readonly runner: CommandRunner;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly color: boolean;
}

export interface HostOptions {
  readonly backend: BackendChoice;
}

function planFor(policy: Policy, inventory: Inventory, live: LiveNetfilter): Plan {
  return diff(compile(policy, inventory, hostFacts(live)), live);
}

function changesExit(changed: boolean, detailed: boolean): number {
  return detailed && changed ? ExitCode.changes : ExitCode.ok;
}

export async function validateCommand(
  ctx: Context,
  options: { file: string; json: boolean },
): Promise<number> {
  const result = await loadPolicyFile(options.file);
  if (options.json) {
    ctx.io.out(
      JSON.stringify(
        { valid: result.policy !== undefined, diagnostics: result.diagnostics },
        null,
        2,
      ) + '\n',
    );
  } else {
    for (const d of result.diagnostics)
      ctx.io.err(formatDiagnostic(d, result.text, { color: ctx.color }) + '\n');
    if (result.policy !== undefined) ctx.io.out(`${options.file} is valid.\n`);
  }
  return result.policy === undefined ? ExitCode.error : ExitCode.ok;
}

export interface PlanOptions extends HostOptions {
  readonly file: string;
  readonly state?: string;
  readonly json: boolean;
  readonly out?: string;
  readonly detailedExitcode: boolean;
}

export async function planCommand(ctx: Context, options: PlanOptions): Promise<number> {
  const { policy, sha256 } = await loadValidPolicy(options.file, ctx.io, ctx.color);
  let live: LiveNetfilter;
  let inventory: Inventory;
  if (options.state !== undefined) {
    ({ live, inventory } = await readSnapshot(options.state));
  } else {
    const host = await openLiveHost({ runner: ctx.runner, backend: options.backend, env: ctx.env });
    [live, inventory] = await Promise.all([host.readLive(), host.readInventory()]);
  }
  const plan = planFor(policy, inventory, live);
  ctx.io.out(options.json ? renderPlanJson(plan) : renderPlanText(plan, { color: ctx.color }));
  if (options.out !== undefined) {
    const doc = planDocument(plan, { policySha256: sha256, toolVersion: TOOL_VERSION });
    await writeFile(options.out, JSON.stringify(doc, null, 2) + '\n');
    if (!options.json)
      ctx.io.out(
        `\nSaved the plan to ${options.out}; apply exactly it with: moat apply ${options.out}\n`,
      );
  }
  return changesExit(!isEmptyPlan(plan), options.detailedExitcode);
}

export async function showCommand(
  ctx: Context,
  options: { planFile: string; json: boolean },
): Promise<number> {
  const { plan } = planFromDocument(await readPlanFile(options.planFile), options.planFile);
  ctx.io.out(options.json ? renderPlanJson(plan) : renderPlanText(plan, { color: ctx.color }));
  return ExitCode.ok;
}

async function readPlanFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    throw new UserError(`cannot read plan file ${path}`, 'not-found');
  }
}

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
  let loaded: LoadedPolicy;
  try {
    loaded = await loadValidPolicy(options.file, ctx.io, ctx.color);
  } catch (error) {
    await remember(ctx, options, failed(error));
    throw error;
  }
  // The run is recorded under the lock too, so runs finishing together never lose a record.
  // A busy lock means another run is doing the work: nothing to record.
  return withLock(options.lockFile, options.lockTimeoutMs, base.command, async () => {
    let outcome: ApplyOutcome;
    try {
      outcome = await applyLocked(ctx, options, loaded.policy, loaded.sha256);
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

async function applyLocked(
  ctx: Context,
  options: ApplyOptions,
  policy: Policy,
  sha256: string,
): Promise<ApplyOutcome> {
  const host = await openLiveHost({ runner: ctx.runner, backend: options.backend, env: ctx.env });
  const inventory = await host.readInventory();
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
    plan = planFor(policy, inventory, await host.readLive());
    if (JSON.stringify(plan.steps) !== JSON.stringify(saved.plan.steps)) {
      throw new StalePlanError(
        `the host or its containers changed since ${options.planFile} was made (or the file was edited); nothing was applied. Plan again.`,
      );
    }
  } else {
    plan = planFor(policy, inventory, await host.readLive());
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
  await applyPlan(plan, {
    runner: ctx.runner,
    backend: host.backend,
    readLive: () => host.readLive(),
    replan: (live) => planFor(policy, inventory, live),
  });
  if (options.logFormat === 'text') ctx.io.out(appliedLine(plan));
  return {
    exitCode: changesExit(true, options.detailedExitcode),
    plan,
    changed: true,
    backend: host.backend,
  };
}

export async function snapshotCommand(
  ctx: Context,
  options: HostOptions & { out: string },
): Promise<number> {
  const host = await openLiveHost({ runner: ctx.runner, backend: options.backend, env: ctx.env });
  await writeSnapshot(options.out, host, TOOL_VERSION);
  ctx.io.out(
    `Wrote a snapshot of this host to ${options.out}; plan against it with: moat plan --state ${options.out}\n`,
  );
  return ExitCode.ok;
}

export type HostStatus = 'Ready' | 'Drifted' | 'Failing';

export async function statusCommand(
  ctx: Context,
  options: HostOptions & { file: string; stateDir: string; json: boolean },
): Promise<number> {
  const history = await readHistory(options.stateDir);
  const last = history.runs.at(-1);
  const lastSuccess = lastWhere(history, (r) => r.result !== 'failed');
  const lastChange = lastWhere(history, (r) => r.result === 'changed');
  const { policy } = await loadValidPolicy(options.file, ctx.io, ctx.color);
  const host = await openLiveHost({ runner: ctx.runner, backend: options.backend, env: ctx.env });
  const [live, inventory] = await Promise.all([host.readLive(), host.readInventory()]);
  const plan = planFor(policy, inventory, live);
  const drift = plan.steps.filter((s) => s.reason === 'drift').length;
  const status: HostStatus =
    last?.result === 'failed' ? 'Failing' : isEmptyPlan(plan) ? 'Ready' : 'Drifted';
  if (options.json) {
    const doc = {
      status,
      last_run: last ?? null,
      last_success: lastSuccess?.time ?? null,
      last_change: lastChange?.time ?? null,
      pending: { steps: plan.steps.length, drift, summary: plan.summary },
    };
    ctx.io.out(JSON.stringify(doc, null, 2) + '\n');
  } else {
    const when = (r: RunRecord | undefined): string =>
      r === undefined ? 'never' : `${r.time} (${r.result}${r.drift ? ', drift repaired' : ''})`;
    ctx.io.out(
      [
        `Status:       ${status}`,
        `Last run:     ${when(last)}${last?.error === undefined ? '' : `: ${last.error.split('\n')[0] ?? ''}`}`,
        `Last success: ${lastSuccess?.time ?? 'never'}`,
        `Last change:  ${when(lastChange)}`,
        `Now:          ${
          isEmptyPlan(plan)
            ? 'the host matches the policy'
            : `${plan.steps.length} step(s) pending, ${drift} of them drift (run \`moat plan\`)`
        }`,
        '',
      ].join('\n'),
    );
  }
  return status === 'Ready'
    ? ExitCode.ok
    : status === 'Drifted'
      ? ExitCode.changes
      : ExitCode.error;
}

/** `moat init`: a firewall.yaml that reproduces today's exposure, so the first plan is empty. */
export async function initCommand(
  ctx: Context,
  options: { out?: string; force: boolean },
): Promise<number> {
  const endpoint = resolveDockerEndpoint(ctx.env);
  const text = initialPolicy(await readInventory(endpoint));
  if (options.out === undefined) {
    ctx.io.out(text);
    return ExitCode.ok;
  }
  try {
    await writeFile(options.out, text, { flag: options.force ? 'w' : 'wx' });
  } catch (error) {
    if ((error as { code?: string }).code === 'EEXIST') {
      throw new UserError(`${options.out} exists; pass --force to overwrite it`, 'exists');
    }
    throw new UserError(`cannot write ${options.out}: ${(error as Error).message}`, 'not-writable');
  }
  ctx.io.out(
    `Wrote ${options.out}. Check it with: moat plan -f ${options.out} (it should show no changes)\n`,
  );
  return ExitCode.ok;
}
