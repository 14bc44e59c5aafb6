/**
 * Which of moat's objects a look must read, from the hints the change notices carried: a
 * one-chain change on a host of 50,000 rules reads that chain, not all of moat's; a change to
 * Docker's own chains reads nothing at all. Pure.
 */
import type { DesiredState } from '../compile/model.js';
import type { ChangeHint } from '../netfilter/parse-monitor.js';
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

/** The part of `desired` a look with `scope` reads and repairs. */
export function scopeDesired(desired: DesiredState, scope: LookScope): DesiredState {
  if (scope.all) return desired;
  const families = { ...desired.families };
  for (const family of FAMILIES) {
    if (scope.families.has(family)) continue;
    const names = scope.chains[family];
    const want = desired.families[family];
    families[family] = {
      ...want,
      chains: want.chains.filter((c) => names.has(c.name)),
      jumps: want.jumps.filter((j) => names.has(j.hook)),
    };
  }
  return { ...desired, families, ipsets: scope.sets ? desired.ipsets : [] };
}
