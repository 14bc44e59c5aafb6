/**
 * `moat plan`'s check of its own words: the plan's "reachable from …" sentences are put to the
 * packet-path evaluator on the whole ruleset the plan leaves (read from the host or the
 * snapshot, the plan applied in memory). A port the plan calls closed that a packet gets into
 * is an error; a port the plan calls open that something else drops is a warning.
 */
import type { PlanWarning } from '../compile/model.js';
import type { World } from '../explain/model.js';
import type { Plan } from '../plan/model.js';

/** How long plan spends checking, so a host with thousands of ports still plans in seconds. */
const BUDGET_MS = 1500;

function summarise(ports: readonly string[]): string {
  return ports.length <= 5 ? ports.join(', ') : `${ports.slice(0, 5).join(', ')}, …`;
}

/**
 * The plan with the contradictions the evaluator finds added to its warnings; `world` is the
 * host (or snapshot) the plan was made from.
 */
export async function crossCheckPlan(world: World, plan: Plan): Promise<Plan> {
  if (plan.exposures.length === 0) return plan;
  const [{ worldAfterPlan }, { crossCheck, contradictionWords }] = await Promise.all([
    import('../explain/after-plan.js'),
    import('../explain/cross-check.js'),
  ]);
  const deadline = Date.now() + BUDGET_MS;
  const checked = crossCheck(
    worldAfterPlan(world, plan),
    plan.exposures,
    plan.glossary,
    () => Date.now() < deadline,
  );
  const found: PlanWarning[] = checked.contradictions.map((c) => ({
    code: c.kind === 'unchecked' ? 'reach-unchecked' : 'reach-contradiction',
    message: contradictionWords(c),
    ...(c.kind === 'open' ? { level: 'error' as const } : {}),
    ...(c.kind === 'unchecked' ? { level: 'note' as const } : {}),
  }));
  if (checked.skipped.length > 0)
    found.push({
      code: 'reach-unchecked',
      level: 'note',
      message: `${checked.skipped.length} of ${plan.exposures.length} published ports were not checked against the whole ruleset within ${BUDGET_MS / 1000} s (those whose words the plan changes and those kept from anyone come first): ${summarise(checked.skipped)}; ask moat explain about one`,
    });
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
