/**
 * The host as it will be once a plan is applied, computed in memory: each step's effect on the
 * filter tables and ipsets, exactly as apply's restore transaction makes it (chains created,
 * rewritten or deleted; moat's hook rules removed by their text and inserted at the top). So
 * `moat explain --after-plan` and `moat test` evaluate what the policy will do, not what the
 * host does now. Pure.
 */
import type {
  LiveChain,
  LiveIpset,
  LiveNetfilter,
  LiveRule,
  LiveRuleset,
} from '../netfilter/model.js';
import { parseRuleSpec } from '../netfilter/parse-rule.js';
import type { Plan, PlannedRule } from '../plan/model.js';
import { FAMILIES, type Family } from '../policy/model.js';
import type { World } from './model.js';

function liveRule(rule: PlannedRule): LiveRule {
  let target: string | undefined;
  try {
    target = parseRuleSpec(rule.line).target?.name;
  } catch {
    target = undefined;
  }
  return target === undefined
    ? { spec: rule.line, moatId: rule.id }
    : { spec: rule.line, moatId: rule.id, target };
}

/** Removes the first rule with each of these specs, as `-D CHAIN spec` does. */
function without(rules: readonly LiveRule[], specs: readonly string[]): LiveRule[] {
  const out = [...rules];
  for (const spec of specs) {
    const at = out.findIndex((r) => r.spec === spec);
    if (at >= 0) out.splice(at, 1);
  }
  return out;
}

function applyToFamily(ruleset: LiveRuleset, plan: Plan, family: Family): LiveRuleset {
  const filter = ruleset.tables.get('filter');
  const chains = new Map<string, LiveChain>(filter?.chains ?? []);
  const set = (name: string, rules: readonly LiveRule[]): void => {
    const old = chains.get(name);
    chains.set(
      name,
      old?.policy === undefined ? { name, rules } : { name, policy: old.policy, rules },
    );
  };
  for (const step of plan.steps) {
    if (!('family' in step) || step.family !== family) continue;
    switch (step.kind) {
      case 'create-chain':
      case 'update-chain':
        set(step.chain, step.rules.map(liveRule));
        break;
      case 'delete-chain':
        chains.delete(step.chain);
        break;
      case 'add-jump':
      case 'move-jump':
        set(step.hook, [
          liveRule(step.rule),
          ...without(chains.get(step.hook)?.rules ?? [], step.remove),
        ]);
        break;
      case 'remove-jump':
        set(step.hook, without(chains.get(step.hook)?.rules ?? [], step.remove));
        break;
      default:
        break;
    }
  }
  return { family, tables: new Map([...ruleset.tables, ['filter', { name: 'filter', chains }]]) };
}

function applyToIpsets(ipsets: ReadonlyMap<string, LiveIpset>, plan: Plan): Map<string, LiveIpset> {
  const out = new Map(ipsets);
  for (const step of plan.steps) {
    switch (step.kind) {
      case 'create-set':
      case 'update-set':
        out.set(step.set, {
          name: step.set,
          type: step.type,
          family: step.family,
          options: '',
          members: [...step.members],
        });
        break;
      case 'destroy-set':
        out.delete(step.set);
        break;
      default:
        break;
    }
  }
  return out;
}

/** The netfilter state once `plan` is applied to `live`. */
export function netfilterAfterPlan(live: LiveNetfilter, plan: Plan): LiveNetfilter {
  const rulesets = {} as Record<Family, LiveRuleset>;
  for (const family of FAMILIES)
    rulesets[family] = applyToFamily(live.rulesets[family], plan, family);
  return { backend: live.backend, rulesets, ipsets: applyToIpsets(live.ipsets, plan) };
}

/** The World once `plan` is applied: only the ruleset and ipsets change. */
export function worldAfterPlan(world: World, plan: Plan): World {
  return { ...world, netfilter: netfilterAfterPlan(world.netfilter, plan) };
}
