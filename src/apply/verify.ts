/**
 * What the host looks like after an apply, read cheaply: only the chains and sets the plan
 * wrote, put into the state the plan was made from. Everything else was not written, and the
 * plan was made under the same lock, so it stands as read.
 */
import { isOwnedChain } from '../core/ownership.js';
import type { CommandRunner } from '../core/runner.js';
import type {
  IptablesBackend,
  LiveChain,
  LiveIpset,
  LiveNetfilter,
  LiveRuleset,
  LiveTable,
} from '../netfilter/model.js';
import { readFilterChains, readIpsetsNamed } from '../netfilter/read.js';
import { swapSetName } from './render-restore.js';
import { isMoatRule } from '../plan/diff.js';
import type { Plan } from '../plan/model.js';
import { FAMILIES, type Family } from '../policy/model.js';

export interface Touched {
  /** Per family, the filter chains the plan's transaction writes, and the hooks moat jumps from. */
  readonly chains: Readonly<Record<Family, readonly string[]>>;
  /** The ipsets the plan writes, and the temporary sets it swaps through (gone afterwards). */
  readonly sets: readonly string[];
}

/** The chains and sets `plan` writes (pure). */
export function touchedBy(plan: Plan, before: LiveNetfilter): Touched {
  const chains: Record<Family, Set<string>> = { ipv4: new Set(), ipv6: new Set() };
  const sets = new Set<string>();
  for (const step of plan.steps) {
    switch (step.kind) {
      case 'create-chain':
      case 'update-chain':
      case 'delete-chain':
        chains[step.family].add(step.chain);
        break;
      case 'add-jump':
      case 'move-jump':
      case 'remove-jump':
        chains[step.family].add(step.hook);
        break;
      case 'create-set':
      case 'destroy-set':
        sets.add(step.set);
        break;
      case 'update-set':
        sets.add(step.set);
        sets.add(swapSetName(step.set));
        break;
    }
  }
  // The hooks moat jumped from before: a transaction that went wrong could leave a second
  // jump there. Only in families the plan writes; another family is not touched at all.
  for (const family of FAMILIES) {
    if (chains[family].size === 0) continue;
    const filter = before.rulesets[family].tables.get('filter');
    for (const chain of filter?.chains.values() ?? []) {
      if (!isOwnedChain(chain.name) && chain.rules.some(isMoatRule)) chains[family].add(chain.name);
    }
  }
  return {
    chains: { ipv4: [...chains.ipv4], ipv6: [...chains.ipv6] },
    sets: [...sets],
  };
}

/**
 * `ruleset` with the listed filter chains replaced: a chain listed as undefined is gone, a new
 * one goes at the end (pure).
 */
export function withChains(
  ruleset: LiveRuleset,
  listed: ReadonlyMap<string, LiveChain | undefined>,
): LiveRuleset {
  if (listed.size === 0) return ruleset;
  const chains = new Map<string, LiveChain>();
  const old = ruleset.tables.get('filter')?.chains ?? new Map<string, LiveChain>();
  for (const [name, chain] of old) {
    const now = listed.has(name) ? listed.get(name) : chain;
    if (now !== undefined) chains.set(name, now);
  }
  for (const [name, chain] of listed) {
    if (chain !== undefined && !old.has(name)) chains.set(name, chain);
  }
  const filter: LiveTable = { name: 'filter', chains };
  return { family: ruleset.family, tables: new Map([...ruleset.tables, ['filter', filter]]) };
}

/** `sets` with the listed ipsets replaced, an undefined one removed (pure). */
export function withIpsets(
  sets: ReadonlyMap<string, LiveIpset>,
  listed: ReadonlyMap<string, LiveIpset | undefined>,
): ReadonlyMap<string, LiveIpset> {
  if (listed.size === 0) return sets;
  const out = new Map(sets);
  for (const [name, set] of listed) {
    if (set === undefined) out.delete(name);
    else out.set(name, set);
  }
  return out;
}

/**
 * The host after applying `plan` to `before`: the touched chains and sets read again (both
 * families and the sets at once), the rest as in `before`. `tableRules`: the rules each family's
 * filter table held at its last full read, when `before` is not one (watch's look reads only
 * moat's chains); it decides whether the chains are listed one by one.
 */
export async function readAfter(
  runner: CommandRunner,
  backend: IptablesBackend,
  plan: Plan,
  before: LiveNetfilter,
  tableRules: Partial<Record<Family, number>> = {},
): Promise<LiveNetfilter> {
  const touched = touchedBy(plan, before);
  const none = new Map<string, never>();
  const chainsOf = (family: Family) => {
    const names = touched.chains[family];
    if (names.length === 0) return none;
    const rules = tableRules[family] ?? rulesIn(before.rulesets[family]);
    return readFilterChains(runner, backend, family, names, { tableRules: rules });
  };
  const [ipv4, ipv6, sets] = await Promise.all([
    chainsOf('ipv4'),
    chainsOf('ipv6'),
    touched.sets.length === 0 ? none : readIpsetsNamed(runner, touched.sets),
  ]);
  return {
    backend: before.backend,
    rulesets: {
      ipv4: withChains(before.rulesets.ipv4, ipv4),
      ipv6: withChains(before.rulesets.ipv6, ipv6),
    },
    ipsets: withIpsets(before.ipsets, sets),
  };
}

function rulesIn(ruleset: LiveRuleset): number {
  let rules = 0;
  for (const chain of ruleset.tables.get('filter')?.chains.values() ?? [])
    rules += chain.rules.length;
  return rules;
}
