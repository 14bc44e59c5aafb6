/**
 * Read the kernel's counters of moat's rules in some chains of one family's filter table.
 *
 * nft: each chain is listed alone with `iptables-nft -S CHAIN -v` (a few ms however large the
 * ruleset; the whole table costs as much as reading it, 0.15 s at 50,000 rules), unless the
 * table is small enough that one listing of it is cheaper. legacy: one
 * chain costs the whole table, so the table is saved once with `iptables-legacy-save -c`, which
 * takes no xtables lock (docs/how-it-works.md measures both). A chain that does not exist has no
 * counters.
 */
import { SubprocessError } from '../core/errors.js';
import { runChecked, type CommandRunner } from '../core/runner.js';
import type { Family } from '../policy/model.js';
import { iptablesFor, legacyTableNames, toolFor } from './backend.js';
import type { IptablesBackend } from './model.js';
import { parseCounters, type RuleCounters } from './parse-counters.js';

export type { RuleCounters } from './parse-counters.js';

/** What iptables says when a chain listed alone is missing (or, on nft 1.8.7-1.8.10, unclear). */
const MISSING_CHAIN =
  /No chain\/target\/match by that name|is incompatible|Incompatible with this kernel/;

async function listChainCounters(
  runner: CommandRunner,
  family: Family,
  chain: string,
): Promise<RuleCounters[]> {
  const command = iptablesFor('nft', family);
  const args = ['-t', 'filter', '-S', chain, '-v'];
  const result = await runner(command, args);
  if (result.exitCode !== 0) {
    if (MISSING_CHAIN.test(result.stderr)) return [];
    throw new SubprocessError([command, ...args].join(' '), result.exitCode, result.stderr);
  }
  return parseCounters(result.stdout, new Set([chain]));
}

/** The whole filter table listed with counters, on nft: cheaper than many chains of a small table. */
async function listTableCounters(
  runner: CommandRunner,
  family: Family,
  chains: ReadonlySet<string>,
): Promise<RuleCounters[]> {
  const listed = await runChecked(runner, iptablesFor('nft', family), ['-t', 'filter', '-S', '-v']);
  return parseCounters(listed.stdout, chains);
}

// As in read.ts: one chain listed alone costs about what 500 rules of a whole-table listing do.
const RULES_PER_CHAIN_LISTING = 500;

/**
 * Counters of every moat rule in the named chains (missing chains contribute nothing).
 * `tableRules`, the rules the family's filter table held when last read, decides on nft whether
 * the chains are listed one by one (default) or the table at once.
 */
export async function readRuleCounters(
  runner: CommandRunner,
  backend: IptablesBackend,
  family: Family,
  chains: readonly string[],
  options?: { tableRules?: number },
): Promise<RuleCounters[]> {
  const unique = [...new Set(chains)];
  if (unique.length === 0) return [];
  if (backend === 'nft') {
    if (unique.length * RULES_PER_CHAIN_LISTING >= (options?.tableRules ?? Infinity))
      return listTableCounters(runner, family, new Set(unique));
    const lists = await Promise.all(unique.map((c) => listChainCounters(runner, family, c)));
    return lists.flat();
  }
  // Not registered: nothing to count, and asking would create it.
  if (!(await legacyTableNames(runner, family)).includes('filter')) return [];
  const saved = await runChecked(runner, toolFor('legacy', family, 'save'), ['-c', '-t', 'filter']);
  return parseCounters(saved.stdout, new Set(unique));
}
