/**
 * The read-only use cases behind the CLI: validate, plan, show, snapshot. Each takes parsed
 * options and an Io, and returns the exit code. apply, status, init and watch have their own
 * modules.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { ExitCode, UserError } from '../core/errors.js';
import type { Inventory } from '../docker/model.js';
import { openLiveHost } from '../host/read-host.js';
import { readSnapshot, writeSnapshot } from '../host/snapshot.js';
import type { LiveNetfilter } from '../netfilter/model.js';
import { isEmptyPlan } from '../plan/model.js';
import { planDocument, planFromDocument, renderPlanJson } from '../plan/render-json.js';
import { renderPlanText } from '../plan/render-text.js';
import { changesExit, planFor, type Context, type HostOptions } from './context.js';
import { loadValidPolicy } from './policy-input.js';
import { TOOL_VERSION } from './version.js';

export type { Context, HostOptions } from './context.js';

export interface PlanOptions extends HostOptions {
  readonly file: string;
  readonly state?: string;
  readonly json: boolean;
  readonly out?: string;
  readonly detailedExitcode: boolean;
}

async function readHostState(
  ctx: Context,
  options: PlanOptions,
): Promise<{ live: LiveNetfilter; inventory: Inventory }> {
  if (options.state !== undefined) return readSnapshot(options.state);
  const host = await openLiveHost({ runner: ctx.runner, backend: options.backend, env: ctx.env });
  const [live, inventory] = await Promise.all([host.readLive(), host.readInventory()]);
  return { live, inventory };
}

export async function planCommand(ctx: Context, options: PlanOptions): Promise<number> {
  // Read the host while the policy is parsed; the policy's own errors are reported first.
  const reading = readHostState(ctx, options);
  reading.catch(() => undefined);
  const { policy, sha256 } = await loadValidPolicy(options.file, ctx.io, ctx.color);
  const { live, inventory } = await reading;
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

export async function readPlanFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    throw new UserError(`cannot read plan file ${path}`, 'not-found');
  }
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
