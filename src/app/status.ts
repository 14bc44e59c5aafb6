/**
 * `moat status`: Ready, Drifted or Failing, from the run history and a plan made now, against
 * the live host or a snapshot of it. Exit codes: Ready 0, Drifted 2, Failing 5; 1 when moat
 * could not tell (Docker down, an invalid policy), so a monitor never mistakes one for another.
 * On a live host it also says what moat's rules dropped, per policy rule (the kernel's counters).
 */
import { ExitCode } from '../core/errors.js';
import { FORWARD_POLICY_DROP } from '../plan/docker-firewall.js';
import { dropLines, dropsDocument, type Locate } from '../plan/drop-words.js';
import type { DropReport } from '../plan/drops.js';
import { isEmptyPlan, type Plan } from '../plan/model.js';
import { lastWhere, readHistory, type RunHistory, type RunRecord } from '../state/runs.js';
import { readRunningWatch, type WatchState } from '../state/watch-state.js';
import type { Context } from './context.js';
import { policyLocate, readDropReport } from './drop-counters.js';
import { makePlan, type PlanSource } from './plan.js';
import { policyName } from './policy-path.js';
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

/** Only what breaks Docker's own forwarding; `moat plan` shows every warning. */
function firewallWarnings(plan: Plan): Plan['warnings'] {
  return plan.warnings.filter((w) => w.code === FORWARD_POLICY_DROP);
}

/** The counters (live host), why they are missing (unreadable), or nothing (a snapshot). */
type Drops = DropReport | Error | undefined;

function dropsJson(drops: Drops, locate: Locate): object {
  if (drops === undefined) return { drops: null };
  if (drops instanceof Error) return { drops: null, drops_error: drops.message };
  return { drops: dropsDocument(drops, locate) };
}

function dropsText(drops: Drops, locate: Locate): string[] {
  if (drops === undefined) return [];
  const lines =
    drops instanceof Error
      ? [`unknown: the counters could not be read (${drops.message.split('\n')[0] ?? ''})`]
      : dropLines(drops, locate);
  return lines.map((line, i) => (i === 0 ? `Drops:        ${line}` : line));
}

/** What the history, a plan made now, the counters and a running `moat watch` (if any) say. */
interface Findings {
  readonly history: RunHistory;
  readonly plan: Plan;
  readonly drops: Drops;
  readonly locate: Locate;
  readonly watch: WatchState | undefined;
}

function statusDocument(status: HostStatus, findings: Findings): unknown {
  const { history, plan, drops, locate, watch } = findings;
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
    docker:
      plan.docker === undefined
        ? null
        : { version: plan.docker.version, firewall_backend: plan.docker.firewallBackend },
    warnings: firewallWarnings(plan),
    ...dropsJson(drops, locate),
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

function statusText(status: HostStatus, findings: Findings): string {
  const { history, plan, drops, locate, watch } = findings;
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
  const docker =
    plan.docker === undefined
      ? 'unknown'
      : `${plan.docker.version}, firewall backend ${plan.docker.firewallBackend}`;
  return [
    `Status:       ${status}`,
    `Last run:     ${when(last)}${error}`,
    `Last success: ${lastSuccess?.time ?? 'never'}`,
    `Last change:  ${when(lastChange)}`,
    `Docker:       ${docker}`,
    `Now:          ${now}`,
    ...firewallWarnings(plan).map((w) => `Warning:      ${w.message}`),
    ...dropsText(drops, locate),
    ...watchLines(watch),
    '',
  ].join('\n');
}

export async function statusCommand(ctx: Context, options: StatusOptions): Promise<number> {
  const [history, watch] = await Promise.all([
    readHistory(options.stateDir),
    readRunningWatch(options.stateDir),
  ]);
  const { plan, policy, desired, live } = await makePlan(ctx, options);
  const locate = policyLocate(policyName(options.file), policy.text);
  // The counters are news, not the verdict: unreadable, they are said so and status goes on.
  const drops: Drops =
    options.snapshot !== undefined
      ? undefined
      : await readDropReport(ctx.runner, live.backend, desired, live).catch((error: unknown) =>
          error instanceof Error ? error : new Error(String(error)),
        );
  const findings: Findings = { history, plan, drops, locate, watch };
  const status: HostStatus =
    history.runs.at(-1)?.result === 'failed' ? 'Failing' : isEmptyPlan(plan) ? 'Ready' : 'Drifted';
  ctx.view.result(
    () => statusText(status, findings),
    () => statusDocument(status, findings),
  );
  return EXIT[status];
}
