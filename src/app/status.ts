/**
 * `moat status`: Ready, Drifted or Failing, from the run history and a plan made now, against
 * the live host or a snapshot of it. Exit codes: Ready 0, Drifted 2, Failing 5; 1 when moat
 * could not tell (Docker down, an invalid policy), so a monitor never mistakes one for another.
 */
import { ExitCode } from '../core/errors.js';
import { isEmptyPlan, type Plan } from '../plan/model.js';
import { lastWhere, readHistory, type RunHistory, type RunRecord } from '../state/runs.js';
import { readRunningWatch, type WatchState } from '../state/watch-state.js';
import type { Context } from './context.js';
import { makePlan, type PlanSource } from './plan.js';
import { plural } from '../core/words.js';

export type HostStatus = 'Ready' | 'Drifted' | 'Failing';

const EXIT: Record<HostStatus, number> = {
  Ready: ExitCode.ok,
  Drifted: ExitCode.changes,
  Failing: ExitCode.failing,
};

export interface StatusOptions extends PlanSource {
  /** Where runs are recorded (`--history-dir`). */
  readonly stateDir: string;
}

/** What the history, a plan made now and a running `moat watch` (if any) say. */
interface Findings {
  readonly history: RunHistory;
  readonly plan: Plan;
  readonly watch: WatchState | undefined;
}

function statusDocument(status: HostStatus, { history, plan, watch }: Findings): unknown {
  return {
    status,
    last_run: history.runs.at(-1) ?? null,
    last_success: lastWhere(history, (r) => r.result !== 'failed')?.time ?? null,
    last_change: lastWhere(history, (r) => r.result === 'changed')?.time ?? null,
    pending: {
      steps: plan.steps.length,
      drift: plan.steps.filter((s) => s.reason === 'drift').length,
      summary: plan.summary,
    },
    watch: watch ?? null,
  };
}

/** What a running `moat watch` says about its repairs; nothing when none runs. */
function watchLines(watch: WatchState | undefined): string[] {
  if (watch === undefined) return [];
  const last = watch.last_repair;
  const lines = [
    `Watch:        running (pid ${watch.pid}) since ${watch.started}, ${plural(watch.repairs, 'repair')}` +
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

function statusText(status: HostStatus, { history, plan, watch }: Findings): string {
  const last = history.runs.at(-1);
  const lastSuccess = lastWhere(history, (r) => r.result !== 'failed');
  const lastChange = lastWhere(history, (r) => r.result === 'changed');
  const drift = plan.steps.filter((s) => s.reason === 'drift').length;
  const when = (r: RunRecord | undefined): string =>
    r === undefined ? 'never' : `${r.time} (${r.result}${r.drift ? ', drift repaired' : ''})`;
  const error = last?.error === undefined ? '' : `: ${last.error.split('\n')[0] ?? ''}`;
  const now = isEmptyPlan(plan)
    ? 'the host matches the policy'
    : `${plural(plan.steps.length, 'step')} pending, ${drift} of them drift (run \`moat plan\`)`;
  return [
    `Status:       ${status}`,
    `Last run:     ${when(last)}${error}`,
    `Last success: ${lastSuccess?.time ?? 'never'}`,
    `Last change:  ${when(lastChange)}`,
    `Now:          ${now}`,
    ...watchLines(watch),
    '',
  ].join('\n');
}

export async function statusCommand(ctx: Context, options: StatusOptions): Promise<number> {
  const [history, watch] = await Promise.all([
    readHistory(options.stateDir),
    readRunningWatch(options.stateDir),
  ]);
  const { plan } = await makePlan(ctx, options);
  const findings: Findings = { history, plan, watch };
  const status: HostStatus =
    history.runs.at(-1)?.result === 'failed' ? 'Failing' : isEmptyPlan(plan) ? 'Ready' : 'Drifted';
  ctx.view.result(
    () => statusText(status, findings),
    () => statusDocument(status, findings),
  );
  return EXIT[status];
}
