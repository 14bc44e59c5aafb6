/**
 * Which of moat's objects a look must read, from the hints the change notices carried: a
 * one-chain change on a host of 50,000 rules reads that chain, not all of moat's; a change to
 * Docker's own chains reads nothing at all. And in which order, when chains are listed one by
 * one: from the hooks down, so that a table rewritten without moat costs a few listings, not
 * one per chain. Pure.
 */
import type { DesiredState, OwnedRule } from '../compile/model.js';
import { isOwnedChain } from '../core/ownership.js';
import type { ChangeHint } from '../netfilter/parse-monitor.js';
import { parseRuleSpec } from '../netfilter/parse-rule.js';
import { FAMILIES, type Family } from '../policy/model.js';

export interface LookScope {
  /** Read everything moat owns (a hint said `anything`, or none said anything). */
  readonly all: boolean;
  /** Families whose every chain of moat's is read (a table replaced, a probe restarted). */
  readonly families: ReadonlySet<Family>;
  readonly chains: Readonly<Record<Family, ReadonlySet<string>>>;
  readonly sets: boolean;
}

export const EVERYTHING: LookScope = {
  all: true,
  families: new Set(FAMILIES),
  chains: { ipv4: new Set(), ipv6: new Set() },
  sets: true,
};

/** The chains a look can read in `family`: moat's chains and the chains holding its jumps. */
export function guardedChains(desired: DesiredState, family: Family): string[] {
  const want = desired.families[family];
  return [...new Set([...want.chains.map((c) => c.name), ...want.jumps.map((j) => j.hook)])];
}

/** Whether a hint can concern moat's objects as `desired` has them. */
export function concerns(hint: ChangeHint, desired: DesiredState): boolean {
  switch (hint.kind) {
    case 'anything':
      return true;
    case 'sets':
      return desired.ipsets.length > 0;
    case 'family':
      return guardedChains(desired, hint.family).length > 0;
    case 'chain':
      return guardedChains(desired, hint.family).includes(hint.chain);
  }
}

/** Hints gathered between two looks. */
export class ScopeBuilder {
  private all = false;
  private sets = false;
  private families = new Set<Family>();
  private chains: Record<Family, Set<string>> = { ipv4: new Set(), ipv6: new Set() };

  add(hint: ChangeHint): void {
    if (hint.kind === 'anything') this.all = true;
    else if (hint.kind === 'sets') this.sets = true;
    else if (hint.kind === 'family') this.families.add(hint.family);
    else this.chains[hint.family].add(hint.chain);
  }

  /** The scope of the next look (everything, when no hint came), and a fresh start. */
  take(): LookScope {
    const empty =
      !this.sets && this.families.size === 0 && FAMILIES.every((f) => this.chains[f].size === 0);
    const scope: LookScope =
      this.all || empty
        ? EVERYTHING
        : { all: false, families: this.families, chains: this.chains, sets: this.sets };
    this.all = false;
    this.sets = false;
    this.families = new Set();
    this.chains = { ipv4: new Set(), ipv6: new Set() };
    return scope;
  }
}

const MATCH_SET = / --match-set (\S+) /;

/**
 * The part of `desired` a look with `scope` reads and repairs: the chains named, and the sets
 * their rules match on besides the sets named. A set destroyed right after the chain that used
 * it was flushed is noticed later (its probe polls): refilling the chain needs it back first.
 */
export function scopeDesired(desired: DesiredState, scope: LookScope): DesiredState {
  if (scope.all) return desired;
  const families = { ...desired.families };
  const used = new Set<string>();
  for (const family of FAMILIES) {
    const want = desired.families[family];
    const chains = scope.families.has(family)
      ? want.chains
      : want.chains.filter((c) => scope.chains[family].has(c.name));
    for (const chain of chains) {
      for (const rule of chain.rules) {
        const set = MATCH_SET.exec(` ${rule.spec} `)?.[1];
        if (set !== undefined) used.add(set);
      }
    }
    if (scope.families.has(family)) continue;
    const names = scope.chains[family];
    families[family] = {
      ...want,
      chains,
      jumps: want.jumps.filter((j) => names.has(j.hook)),
    };
  }
  const ipsets = scope.sets ? desired.ipsets : desired.ipsets.filter((s) => used.has(s.name));
  return { ...desired, families, ipsets };
}

/** The chain a rule of moat's jumps or goes to, when it is one of moat's. */
function ownedTarget(rule: OwnedRule): string | undefined {
  try {
    const name = parseRuleSpec(rule.spec).target?.name;
    return name !== undefined && isOwnedChain(name) ? name : undefined;
  } catch {
    return undefined; // moat renders every rule it writes; a spec it cannot parse jumps nowhere
  }
}

/** For each of `names`, the others of `names` that jump to it as `desired` has `family`. */
function parentsWithin(
  desired: DesiredState,
  family: Family,
  names: ReadonlySet<string>,
): Map<string, string[]> {
  const parents = new Map<string, string[]>([...names].map((n) => [n, []]));
  const link = (from: string, rule: OwnedRule): void => {
    const to = ownedTarget(rule);
    if (to !== undefined && to !== from && names.has(from)) parents.get(to)?.push(from);
  };
  const want = desired.families[family];
  for (const jump of want.jumps) link(jump.hook, jump.rule);
  for (const chain of want.chains) for (const rule of chain.rules) link(chain.name, rule);
  return parents;
}

/**
 * Which of `names` (chains of `family`) to list next, given those listed so far (true: there).
 * A chain is listed once a chain that jumps to it, as `desired` has it, is there; or at once
 * when none of `names` jumps to it (a hook, or a chain whose parents are not being read). A
 * chain whose every parent is gone is never listed: gone for the plan, which creates it, and a
 * restore creating a chain that is there after all only empties and refills it. Empty: done.
 */
export function nextListings(
  desired: DesiredState,
  family: Family,
  names: readonly string[],
  listed: ReadonlyMap<string, boolean>,
): string[] {
  const parents = parentsWithin(desired, family, new Set(names));
  return names.filter((name) => {
    if (listed.has(name)) return false;
    const from = parents.get(name) ?? [];
    return from.length === 0 || from.some((p) => listed.get(p) === true);
  });
}
