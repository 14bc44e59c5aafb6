/**
 * Reads only what moat owns and hooks into, for watch's drift check: the chains and sets a
 * desired state names and the chains that hold its jumps, as a LiveNetfilter that diff can
 * compare with that desired state (chains it did not ask for are simply absent). Much cheaper
 * than a full read on a big host with nft (`iptables-nft -S CHAIN`, 3 ms a chain, each one
 * program started), where chains are listed from the hooks down and not below a chain that is
 * gone; on legacy one save per family, as the verification after an apply reads.
 */
import type { DesiredState } from '../compile/model.js';
import type { CommandRunner } from '../core/runner.js';
import type {
  IptablesBackend,
  LiveChain,
  LiveIpset,
  LiveNetfilter,
  LiveRuleset,
} from '../netfilter/model.js';
import { listsChainsAlone, readFilterChains, readIpsetsNamed } from '../netfilter/read.js';
import type { Family } from '../policy/model.js';
import { guardedChains, nextListings } from '../watch/scope.js';

/**
 * A walk's first listings: the chains nothing (of `names`) jumps to, the hooks, and the chains
 * they jump to, at once (the hooks are there on any Docker host). Also the fewest a walk lists,
 * as when a table was rewritten without moat: worth walking only when that beats the table.
 */
function firstListings(desired: DesiredState, family: Family, names: readonly string[]): string[] {
  const roots = nextListings(desired, family, names, new Map());
  const there = new Map(roots.map((name) => [name, true]));
  return [...roots, ...nextListings(desired, family, names, there)];
}

async function readFamily(
  runner: CommandRunner,
  backend: IptablesBackend,
  desired: DesiredState,
  family: Family,
  tableRules: number | undefined,
): Promise<LiveRuleset> {
  const names = guardedChains(desired, family);
  const found = new Map<string, LiveChain>();
  const options = tableRules === undefined ? {} : { tableRules };
  if (
    names.length > 0 &&
    !listsChainsAlone(backend, firstListings(desired, family, names).length, tableRules)
  ) {
    const chains = await readFilterChains(runner, backend, family, names, options);
    for (const [name, chain] of chains) if (chain !== undefined) found.set(name, chain);
  } else {
    // From the hooks down, never below a chain that is gone (src/watch/scope.ts); each round
    // one by one, or with the table when it has many (readFilterChains decides).
    const listed = new Map<string, boolean>();
    for (let next = firstListings(desired, family, names); next.length > 0;) {
      const chains = await readFilterChains(runner, backend, family, next, options);
      for (const name of next) {
        const chain = chains.get(name);
        listed.set(name, chain !== undefined);
        if (chain !== undefined) found.set(name, chain);
      }
      next = nextListings(desired, family, names, listed);
    }
  }
  return { family, tables: new Map([['filter', { name: 'filter', chains: found }]]) };
}

/**
 * moat's objects as the host holds them now. `tableRules`: the rules each family's filter table
 * held when last read in full, which decides whether chains are listed one by one.
 */
export async function readOwned(
  runner: CommandRunner,
  backend: IptablesBackend,
  desired: DesiredState,
  tableRules: Partial<Record<Family, number>> = {},
): Promise<LiveNetfilter> {
  const setNames = desired.ipsets.map((s) => s.name);
  const family = (f: Family): Promise<LiveRuleset> =>
    readFamily(runner, backend, desired, f, tableRules[f]);
  const [ipv4, ipv6, sets] = await Promise.all([
    family('ipv4'),
    family('ipv6'),
    setNames.length === 0
      ? Promise.resolve(new Map<string, LiveIpset | undefined>())
      : readIpsetsNamed(runner, setNames),
  ]);
  const ipsets = new Map<string, LiveIpset>();
  for (const [name, set] of sets) if (set !== undefined) ipsets.set(name, set);
  return { backend, rulesets: { ipv4, ipv6 }, ipsets };
}
