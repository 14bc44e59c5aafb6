/** `moat status`: Ready, Drifted or Failing, from the run record and a live plan. */
import { ExitCode } from '../core/errors.js';
import { openLiveHost } from '../host/read-host.js';
import { isEmptyPlan } from '../plan/model.js';
import { lastWhere, readHistory, type RunRecord } from '../state/runs.js';
import { readRunningWatch, type WatchState } from '../state/watch-state.js';
import { planFor, type Context, type HostOptions } from './context.js';
import { loadValidPolicy } from './policy-input.js';

export type HostStatus = 'Ready' | 'Drifted' | 'Failing';

export async function statusCommand(
  ctx: Context,
  options: HostOptions & { file: string; stateDir: string; json: boolean },
): Promise<number> {
  const [history, watch] = await Promise.all([
    readHistory(options.stateDir),
    readRunningWatch(options.stateDir),
  ]);
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
      watch: watch ?? null,
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
        ...watchLines(watch),
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

/** What a running `moat watch` says about its repairs; nothing when none runs. */
function watchLines(watch: WatchState | undefined): string[] {
  if (watch === undefined) return [];
  const last = watch.last_repair;
  const lines = [
    `Watch:        running (pid ${watch.pid}) since ${watch.started}, ${watch.repairs} repair(s)` +
      (watch.probes.length === 0
        ? ', no change notifications'
        : `, noticing with ${watch.probes.join(' and ')}`),
  ];
  if (last !== undefined) {
    lines.push(`Last repair:  ${last.time} in ${last.latency_ms} ms: ${last.drift.join(', ')}`);
  }
  const fight = watch.fight;
  if (fight !== undefined) {
    lines.push(
      `Fighting:     since ${fight.since}, another program keeps undoing: ${fight.drift.join(', ')}` +
        ` (round ${fight.round}, repairs held until ${fight.hold_until})`,
    );
  }
  return lines;
}
