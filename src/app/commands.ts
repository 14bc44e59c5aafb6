/**
 * Small use cases behind the CLI: show and snapshot. Each takes parsed options and a context,
 * and returns the exit code. validate, plan, apply, status, init and watch have their own
 * modules.
 */
import { ExitCode } from '../core/errors.js';
import { openLiveHost } from '../host/read-host.js';
import { writeSnapshot } from '../host/snapshot.js';
import { planDocument } from '../plan/render-json.js';
import { renderPlanText } from '../plan/render-text.js';
import type { Context, HostOptions } from './context.js';
import { readSavedPlan } from './saved-plan.js';
import { TOOL_VERSION } from './version.js';

export type { Context, HostOptions } from './context.js';

export async function showCommand(ctx: Context, options: { planFile: string }): Promise<number> {
  const { plan } = await readSavedPlan(ctx.io, options.planFile);
  ctx.view.result(
    () => renderPlanText(plan, { color: ctx.view.color }),
    () => planDocument(plan),
  );
  return ExitCode.ok;
}

export async function snapshotCommand(
  ctx: Context,
  options: HostOptions & { out: string },
): Promise<number> {
  const host = await openLiveHost({
    runner: ctx.runner,
    backend: options.backend,
    env: ctx.env,
    ...(ctx.readSystem === undefined ? {} : { readSystem: ctx.readSystem }),
  });
  await writeSnapshot(options.out, host, TOOL_VERSION);
  ctx.view.note(
    `Wrote a snapshot of this host to ${options.out}; plan against it with: moat plan --snapshot ${options.out}\n`,
  );
  return ExitCode.ok;
}
