/**
 * The use cases behind the CLI: validate, plan, apply, show, snapshot. Each takes parsed
 * options and an Io, and returns the exit code.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { compile } from '../compile/compile.js';
import { ExitCode, UserError } from '../core/errors.js';
import type { CommandRunner } from '../core/runner.js';
import type { Inventory } from '../docker/model.js';
import { applyPlan, StalePlanError } from '../apply/apply.js';
import { withLock } from '../host/lock.js';
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
import { loadValidPolicy } from './policy-input.js';
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

export interface ApplyOptions extends HostOptions {
  readonly file: string;
  readonly lockFile: string;
  readonly lockTimeoutMs: number;
  readonly planFile?: string;
  readonly autoApprove: boolean;
  readonly quiet: boolean;
  readonly detailedExitcode: boolean;
}

function appliedLine(plan: Plan): string {
  const { add, change, destroy } = plan.summary;
  return `Apply complete: ${add} added, ${change} changed, ${destroy} destroyed.\n`;
}

export async function applyCommand(ctx: Context, options: ApplyOptions): Promise<number> {
  const { policy, sha256 } = await loadValidPolicy(options.file, ctx.io, ctx.color);
  const command = `moat apply -f ${options.file}${options.planFile === undefined ? '' : ` ${options.planFile}`}`;
  return withLock(options.lockFile, options.lockTimeoutMs, command, () =>
    applyLocked(ctx, options, policy, sha256),
  );
}

async function applyLocked(
  ctx: Context,
  options: ApplyOptions,
  policy: Policy,
  sha256: string,
): Promise<number> {
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
    plan = saved.plan;
  } else {
    plan = planFor(policy, inventory, await host.readLive());
  }

  if (isEmptyPlan(plan)) {
    if (!options.quiet) ctx.io.out(renderPlanText(plan, { color: ctx.color }));
    return ExitCode.ok;
  }
  if (!options.quiet) ctx.io.out(renderPlanText(plan, { color: ctx.color }));
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
      return ExitCode.error;
    }
  }
  await applyPlan(plan, {
    runner: ctx.runner,
    backend: host.backend,
    readLive: () => host.readLive(),
    replan: (live) => planFor(policy, inventory, live),
  });
  ctx.io.out(appliedLine(plan));
  return changesExit(true, options.detailedExitcode);
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
