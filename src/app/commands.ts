/**
 * Read-only use cases behind the CLI: show and snapshot. Each takes parsed options and an Io,
 * and returns the exit code. validate, plan, apply, status, init and watch have their own
 * modules.
 */
import { readFile } from 'node:fs/promises';
import { ExitCode, UserError } from '../core/errors.js';
import { openLiveHost } from '../host/read-host.js';
import { writeSnapshot } from '../host/snapshot.js';
import { planFromDocument, renderPlanJson } from '../plan/render-json.js';
import { renderPlanText } from '../plan/render-text.js';
import type { Context, HostOptions } from './context.js';
import { TOOL_VERSION } from './version.js';

export type { Context, HostOptions } from './context.js';

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
  const meta = await writeSnapshot(options.out, host, TOOL_VERSION);
  const docker =
    meta.docker_version === undefined
      ? ''
      : ` (Docker ${meta.docker_version}, firewall backend ${meta.docker_firewall_backend ?? '?'})`;
  ctx.io.out(
    `Wrote a snapshot of this host${docker} to ${options.out}; plan against it with: moat plan --state ${options.out}\n`,
  );
  return ExitCode.ok;
}
