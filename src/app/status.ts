/**
 * `moat status`: Ready, Drifted or Failing, from the run history and a plan made now, against
 * the live host or a snapshot of it. Exit codes: Ready 0, Drifted 2, Failing 5; 1 when moat
 * could not tell (Docker down, an invalid policy), so a monitor never mistakes one for another.
 */
import { ExitCode } from '../core/errors.js';
import { FORWARD_POLICY_DROP } from '../plan/docker-firewall.js';
import { isEmptyPlan, type Plan } from '../plan/model.js';
import { lastWhere, readHistory, type RunHistory, type RunRecord } from '../state/runs.js';
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

/** Only what breaks Docker's own forwarding; `moat plan` shows every warning. */
function firewallWarnings(plan: Plan): Plan['warnings'] {
  return plan.warnings.filter((w) => w.code === FORWARD_POLICY_DROP);
}

function statusDocument(status: HostStatus, history: RunHistory, plan: Plan): unknown {
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
  };
}

function statusText(status: HostStatus, history: RunHistory, plan: Plan): string {
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
    '',
  ].join('\n');
}

export async function statusCommand(ctx: Context, options: StatusOptions): Promise<number> {
  const history = await readHistory(options.stateDir);
  const { plan } = await makePlan(ctx, options);
  const status: HostStatus =
    history.runs.at(-1)?.result === 'failed' ? 'Failing' : isEmptyPlan(plan) ? 'Ready' : 'Drifted';
  ctx.view.result(
    () => statusText(status, history, plan),
    () => statusDocument(status, history, plan),
  );
  return EXIT[status];
}
