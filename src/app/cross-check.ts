/**
 * `moat plan`'s check of its own words: the plan's "reachable from …" sentences are put to the
 * packet-path evaluator on the whole ruleset the plan leaves (read from the host or the
 * snapshot, the plan applied in memory). A port the plan calls closed that a packet gets into
 * is an error; a port the plan calls open that something else drops is a warning.
 */
import type { PlanWarning } from '../compile/model.js';
import type { Plan } from '../plan/model.js';
import type { Context } from './context.js';
import { readHostWorld, type HostSource } from './host-state.js';

/** The plan with the contradictions the evaluator finds added to its warnings. */
export async function crossCheckPlan(ctx: Context, source: HostSource, plan: Plan): Promise<Plan> {
  if (plan.exposures.length === 0) return plan;
  const [world, { worldAfterPlan }, { crossCheck, contradictionWords }] = await Promise.all([
    readHostWorld(ctx, source),
    import('../explain/after-plan.js'),
    import('../explain/cross-check.js'),
  ]);
  const found: PlanWarning[] = crossCheck(
    worldAfterPlan(world, plan),
    plan.exposures,
    plan.glossary,
  ).map((c) => ({
    code: 'reach-contradiction',
    message: contradictionWords(c),
    ...(c.kind === 'open' ? { level: 'error' as const } : {}),
  }));
  if (world.network.sysctl === undefined)
    found.push({
      code: 'reach-unchecked',
      level: 'note',
      message:
        "the plan's reach was not checked against the whole ruleset: this snapshot has no network facts (take it again with moat snapshot)",
    });
  return found.length === 0 ? plan : { ...plan, warnings: [...plan.warnings, ...found] };
}

/** Whether the plan holds a sentence the packets contradict. */
export function contradicted(plan: Plan): boolean {
  return plan.warnings.some((w) => w.level === 'error');
}
