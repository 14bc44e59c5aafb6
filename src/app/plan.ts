/**
 * `moat plan`. The host is read first and the rest of moat (policy reader, compiler, differ,
 * renderers: most of its code) is loaded while the reads run, so start-up and reading overlap.
 */
import { writeFile } from 'node:fs/promises';
import { openLiveHost, type HostState } from '../host/read-host.js';
import type { Context, HostOptions } from './context.js';

export interface PlanOptions extends HostOptions {
  readonly file: string;
  readonly state?: string;
  readonly json: boolean;
  readonly out?: string;
  readonly detailedExitcode: boolean;
}

async function readHostState(ctx: Context, options: PlanOptions): Promise<HostState> {
  if (options.state !== undefined) {
    const { readSnapshot } = await import('../host/snapshot.js');
    return readSnapshot(options.state);
  }
  const host = await openLiveHost({ runner: ctx.runner, backend: options.backend, env: ctx.env });
  const [live, inventory, system] = await Promise.all([
    host.readLive(),
    host.readInventory(),
    host.readSystem(),
  ]);
  return { live, inventory, system };
}

export async function planCommand(ctx: Context, options: PlanOptions): Promise<number> {
  // Read the host while the policy is parsed; the policy's own errors are reported first.
  const reading = readHostState(ctx, options);
  reading.catch(() => undefined);
  const [
    { loadValidPolicy },
    { changesExit, planFor, withListenerNames },
    model,
    json,
    text,
    { TOOL_VERSION },
  ] = await Promise.all([
    import('./policy-input.js'),
    import('./context.js'),
    import('../plan/model.js'),
    import('../plan/render-json.js'),
    import('../plan/render-text.js'),
    import('./version.js'),
  ]);
  const { policy, sha256 } = await loadValidPolicy(options.file, ctx.io, ctx.color);
  const { live, inventory, system } = await reading;
  const plan = planFor(policy, inventory, live, await withListenerNames(policy, system ?? {}));
  ctx.io.out(
    options.json ? json.renderPlanJson(plan) : text.renderPlanText(plan, { color: ctx.color }),
  );
  if (options.out !== undefined) {
    const doc = json.planDocument(plan, { policySha256: sha256, toolVersion: TOOL_VERSION });
    await writeFile(options.out, JSON.stringify(doc, null, 2) + '\n');
    if (!options.json)
      ctx.io.out(
        `\nSaved the plan to ${options.out}; apply exactly it with: moat apply ${options.out}\n`,
      );
  }
  return changesExit(!model.isEmptyPlan(plan), options.detailedExitcode);
}
