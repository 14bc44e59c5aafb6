/**
 * `moat status`: Ready, Drifted or Failing, from the run record and a live plan; and what
 * moat's rules dropped, per policy rule, from the kernel's counters.
 */
import { ExitCode } from '../core/errors.js';
import { openLiveHost } from '../host/read-host.js';
import { diff } from '../plan/diff.js';
import { dropLines, dropsDocument } from '../plan/drop-words.js';
import { isEmptyPlan } from '../plan/model.js';
import { lastWhere, readHistory, type RunRecord } from '../state/runs.js';
import { desiredFor, withListenerNames, type Context, type HostOptions } from './context.js';
import { policyLocate, readDropReport } from './drop-counters.js';
import { loadValidPolicy } from './policy-input.js';

export type HostStatus = 'Ready' | 'Drifted' | 'Failing';

export async function statusCommand(
  ctx: Context,
  options: HostOptions & { file: string; stateDir: string; json: boolean },
): Promise<number> {
  const history = await readHistory(options.stateDir);
  const last = history.runs.at(-1);
  const lastSuccess = lastWhere(history, (r) => r.result !== 'failed');
  const lastChange = lastWhere(history, (r) => r.result === 'changed');
  const { policy, text } = await loadValidPolicy(options.file, ctx.io, ctx.color);
  const host = await openLiveHost({ runner: ctx.runner, backend: options.backend, env: ctx.env });
  const [live, inventory, system] = await Promise.all([
    host.readLive(),
    host.readInventory(),
    host.readSystem(),
  ]);
  const desired = desiredFor(policy, inventory, live, await withListenerNames(policy, system));
  const plan = diff(desired, live);
  // The counters are news, not the verdict: unreadable, they are said so and status goes on.
  const drops = await readDropReport(ctx.runner, host.backend, desired, live).catch(
    (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
  );
  const locate = policyLocate(options.file, text);
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
      drops: drops instanceof Error ? null : dropsDocument(drops, locate),
      ...(drops instanceof Error ? { drops_error: drops.message } : {}),
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
        ...(drops instanceof Error
          ? [`unknown: the counters could not be read (${drops.message.split('\n')[0] ?? ''})`]
          : dropLines(drops, locate)
        ).map((line, i) => (i === 0 ? `Drops:        ${line}` : line)),
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
