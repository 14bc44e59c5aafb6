/**
 * Read the live netfilter state of the host (or of the namespace the runner's commands run in):
 * both families' iptables tables and every ipset; or, to verify an apply, only some chains and
 * sets.
 *
 * On nft, tables are read with `iptables-nft -t TABLE -S`, not `iptables-nft-save -t TABLE`: the
 * rule lines are the same, and the listing costs about 55% of the save at 50,000 rules (150
 * against 260 ms here). On legacy both cost the same, and `iptables-legacy -S` takes the xtables
 * lock in some versions (and then fails at once while Docker writes): legacy is read with
 * iptables-legacy-save, which never takes it.
 *
 * nft's own view (tables and base chains) is read with `nft -j list chains`, never a whole
 * ruleset listing, except for a snapshot, which keeps the ruleset whole.
 */
import { SubprocessError } from '../core/errors.js';
import { isOwnedChain } from '../core/ownership.js';
import {
  runChecked,
  type CommandResult,
  type CommandRunner,
  type RunOptions,
} from '../core/runner.js';
import type { Family } from '../policy/model.js';
import { iptablesFor, legacyTableNames, toolFor } from './backend.js';
import type {
  IptablesBackend,
  LiveChain,
  LiveIpset,
  LiveNetfilter,
  LiveRuleset,
  LiveTable,
} from './model.js';
import { parseIpsetSave } from './parse-ipset.js';
import { parseNftJson, type NftRuleset } from './parse-nft.js';
import {
  incompatibleTableError,
  ListingParser,
  parseListing,
  parseSave,
  SaveParseError,
} from './parse-save.js';

const DEFAULT_TABLES: readonly string[] = ['filter'];

// `iptables-nft -S` exits 1 with this on stderr for a table written with nft that it cannot
// express (iptables-nft-save prints it as a comment and exits 0).
const INCOMPATIBLE_TABLE = /table `([^']*)' is incompatible, use 'nft' tool/;

/** The table as `iptables -t TABLE -S [CHAIN]` lists it. */
async function list(
  runner: CommandRunner,
  backend: IptablesBackend,
  family: Family,
  table: string,
  chain?: string,
  options?: RunOptions,
): Promise<{ result: CommandResult; command: string; args: string[] }> {
  const command = iptablesFor(backend, family);
  const args = chain === undefined ? ['-t', table, '-S'] : ['-t', table, '-S', chain];
  return { result: await runner(command, args, undefined, options), command, args };
}

/** One table (only the chains named in `only`, when given), read as the backend is best read. */
async function listTable(
  runner: CommandRunner,
  backend: IptablesBackend,
  family: Family,
  table: string,
  only?: ReadonlySet<string>,
): Promise<LiveTable> {
  if (backend === 'legacy') return saveTable(runner, family, table, only);
  // Parsed as it is printed (tens of thousands of lines on a busy host); a parse error is
  // kept until the exit status has been looked at, which explains a failure better.
  const parser = new ListingParser(family, table, only);
  const stream: { started: boolean; error?: Error } = { started: false };
  const onStdout = (chunk: string): void => {
    stream.started = true;
    if (stream.error !== undefined) return;
    try {
      parser.push(chunk);
    } catch (error) {
      stream.error = error instanceof Error ? error : new Error(String(error));
    }
  };
  const { result, command, args } = await list(runner, backend, family, table, undefined, {
    onStdout,
  });
  if (result.exitCode !== 0) {
    const incompatible = INCOMPATIBLE_TABLE.exec(result.stderr);
    if (incompatible !== null && incompatible[1] === table) {
      throw incompatibleTableError(family, table, `${command}: ${result.stderr.trim()}`);
    }
    throw new SubprocessError([command, ...args].join(' '), result.exitCode, result.stderr);
  }
  if (stream.error !== undefined) throw stream.error;
  if (!stream.started) parser.push(result.stdout); // a runner that does not stream
  return parser.end().ruleset.tables.get(table) as LiveTable;
}

/**
 * The lines of a save that declare or fill the chains in `only`, and the table's frame: a
 * parse of a few chains instead of 30,000 rules (5–15 ms against 40–90 here).
 */
function keepChains(text: string, only: ReadonlySet<string>): string {
  return text
    .split('\n')
    .filter((line) => {
      const from = line.startsWith('-A ') ? 3 : line.startsWith(':') ? 1 : -1;
      if (from < 0) return true;
      const end = line.indexOf(' ', from);
      return only.has(line.slice(from, end < 0 ? undefined : end));
    })
    .join('\n');
}

async function saveTable(
  runner: CommandRunner,
  family: Family,
  table: string,
  only?: ReadonlySet<string>,
): Promise<LiveTable> {
  const command = toolFor('legacy', family, 'save');
  const result = await runChecked(runner, command, ['-t', table]);
  const text = only === undefined ? result.stdout : keepChains(result.stdout, only);
  const saved = parseSave(text, family).tables.get(table);
  const chains = new Map<string, LiveChain>();
  for (const [name, chain] of saved?.chains ?? []) {
    if (only === undefined || only.has(name)) chains.set(name, chain);
  }
  return { name: table, chains };
}

async function readFamily(
  runner: CommandRunner,
  backend: IptablesBackend,
  family: Family,
  tables: readonly string[],
): Promise<LiveRuleset> {
  // A legacy table that is not registered yet would be created (and its module loaded) by
  // asking for it; an absent table holds nothing, so skip it.
  const present = backend === 'legacy' ? await legacyTableNames(runner, family) : undefined;
  const wanted = tables.filter((name) => present === undefined || present.includes(name));
  const read = await Promise.all(wanted.map((name) => listTable(runner, backend, family, name)));
  return { family, tables: new Map(read.map((table) => [table.name, table])) };
}

async function runIpset(runner: CommandRunner, args: readonly string[]): Promise<CommandResult> {
  try {
    return await runner('ipset', args);
  } catch (error) {
    // No ipset binary: no sets can exist that moat or a policy could use.
    if (error instanceof SubprocessError && error.commandExitCode === undefined) {
      return { stdout: '', stderr: '', exitCode: 0 };
    }
    throw error;
  }
}

/** What `nft ARGS` printed, or undefined where nft is not installed; a failure is an error. */
async function nftListing(
  runner: CommandRunner,
  args: readonly string[],
): Promise<string | undefined> {
  let result: CommandResult;
  try {
    result = await runner('nft', args);
  } catch (error) {
    if (error instanceof SubprocessError && error.commandExitCode === undefined) return undefined;
    throw error;
  }
  if (result.exitCode !== 0)
    throw new SubprocessError(['nft', ...args].join(' '), result.exitCode, result.stderr);
  return result.stdout;
}

/**
 * `nft -j list ruleset` as printed, or undefined where nft is not installed (the snapshot then
 * does without it). Every rule of every table: seconds on a host with 50,000 iptables-nft rules.
 */
export function readNftRuleset(runner: CommandRunner): Promise<string | undefined> {
  return nftListing(runner, ['-j', 'list', 'ruleset']);
}

/**
 * The nft tables and base chains, from `nft -j list chains`; undefined where nft is not
 * installed. That listing holds every chain of every table (hook, priority and policy where it
 * is a base chain) and no rule, so it takes milliseconds however many rules the host holds
 * (`nft -j list ruleset`: seconds at 50,000 iptables-nft rules). It is all plan, status and the
 * evaluator take from nft: the tables (each that has a chain; one without sees no packet) and
 * the base chains. `nft list tables` costs as much as listing every rule before nftables 1.1.0
 * (Debian 12 has 1.0.6, Ubuntu 24.04 1.0.9), and nft's JSON marks no table as iptables-nft's,
 * so moat reads no table's rules rather than guess which tables iptables-save already showed.
 */
export async function readNftChains(runner: CommandRunner): Promise<NftRuleset | undefined> {
  const args = ['-j', 'list', 'chains'];
  const json = await nftListing(runner, args);
  return json === undefined ? undefined : parseNftJson(json, ['nft', ...args].join(' '));
}

/** Every ipset (none where ipset is not installed); a failing `ipset save` is an error. */
export async function readIpsets(runner: CommandRunner): Promise<Map<string, LiveIpset>> {
  const result = await runIpset(runner, ['save']);
  if (result.exitCode !== 0) {
    throw new SubprocessError('ipset save', result.exitCode, result.stderr);
  }
  return parseIpsetSave(result.stdout);
}

/** Both families' tables (default: filter) and all ipsets, read with the given backend. */
export async function readLiveNetfilter(
  runner: CommandRunner,
  backend: IptablesBackend,
  options?: { tables?: readonly string[] },
): Promise<LiveNetfilter> {
  const tables = options?.tables ?? DEFAULT_TABLES;
  // The three reads are independent programs: run them at once (two cores, and the kernel
  // answers each while node parses another).
  const [ipv4, ipv6, ipsets] = await Promise.all([
    readFamily(runner, backend, 'ipv4', tables),
    readFamily(runner, backend, 'ipv6', tables),
    readIpsets(runner),
  ]);
  return { backend, rulesets: { ipv4, ipv6 }, ipsets };
}

/**
 * Whether iptables says a chain listed alone does not exist. "No chain/target/match" says so.
 * iptables-nft 1.8.7 to 1.8.9 call a missing chain incompatible, and 1.8.10 says "Incompatible
 * with this kernel", which are also what a chain holding rules written with nft gets: those two
 * are `ambiguous`.
 */
function chainAbsence(
  stderr: string,
  table: string,
  chain: string,
): 'missing' | 'ambiguous' | undefined {
  if (stderr.includes('No chain/target/match by that name')) return 'missing';
  if (
    stderr.includes(`chain \`${chain}' in table \`${table}' is incompatible`) ||
    stderr.includes('tables: Incompatible with this kernel')
  ) {
    return 'ambiguous';
  }
  return undefined;
}

/**
 * One chain of the filter table, listed alone; undefined when it does not exist, `ambiguous`
 * when iptables cannot tell a missing chain from one it cannot show.
 */
async function listChain(
  runner: CommandRunner,
  backend: IptablesBackend,
  family: Family,
  name: string,
): Promise<LiveChain | undefined | 'ambiguous'> {
  const { result, command, args } = await list(runner, backend, family, 'filter', name);
  if (result.exitCode !== 0) {
    const absence = chainAbsence(result.stderr, 'filter', name);
    if (absence === 'missing') return undefined;
    if (absence === 'ambiguous') return 'ambiguous';
    throw new SubprocessError([command, ...args].join(' '), result.exitCode, result.stderr);
  }
  const chain = parseListing(result.stdout, family).tables.get('filter')?.chains.get(name);
  if (chain === undefined) {
    throw new SaveParseError(`${[command, ...args].join(' ')} did not list chain ${name}`);
  }
  return chain;
}

// What listing one chain alone costs on nft, in rules of a whole-table listing. Listing a chain
// costs what starting iptables-nft costs: 3 ms on a quiet machine, where the table listing took
// 155 ms for 45,000 rules (~1,000 rules' worth), and 20-30 ms from watch on a loaded VM, where
// 30,000 rules took 300-400 ms (~1,500-2,500). The larger keeps the worse case cheaper.
const RULES_PER_CHAIN_LISTING = 1500;

/**
 * Whether `count` chains of a filter table that held `tableRules` rules when last read are
 * listed one by one (nft, a big table) rather than with the whole table.
 */
export function listsChainsAlone(
  backend: IptablesBackend,
  count: number,
  tableRules = Number.POSITIVE_INFINITY,
): boolean {
  return backend === 'nft' && count * RULES_PER_CHAIN_LISTING < tableRules;
}

/**
 * Some chains of one family's filter table: each name maps to the chain, or to undefined when
 * it does not exist. On nft a chain can be listed alone (`iptables-nft -S CHAIN`: 3 ms however
 * large the ruleset), which is cheaper than the whole table unless the table is small or the
 * chains many: `tableRules`, the rules the table held when last read, decides (default: alone).
 * When iptables cannot tell whether a chain is missing, one of moat's own chains counts as
 * missing: they are never base chains, and iptables-nft calls a chain that is not a base chain
 * incompatible only when it is absent (1.8.7 to 1.8.9) or holds rules written with nft (1.8.10),
 * which moat's restore empties and refills all the same (`:CHAIN - [0:0]`) and its verification
 * reads again. For any other chain (a hook) the whole table is listed, which fails loudly on a
 * table iptables cannot show. On legacy one chain costs the whole table anyway (27 against 39 ms
 * at 50,000 rules), so the table is read once and only the named chains are parsed.
 */
export async function readFilterChains(
  runner: CommandRunner,
  backend: IptablesBackend,
  family: Family,
  names: readonly string[],
  options?: { tableRules?: number },
): Promise<ReadonlyMap<string, LiveChain | undefined>> {
  const unique = [...new Set(names)];
  if (listsChainsAlone(backend, unique.length, options?.tableRules)) {
    const chains = await Promise.all(
      unique.map((name) => listChain(runner, backend, family, name)),
    );
    const unsure = unique.some((name, i) => chains[i] === 'ambiguous' && !isOwnedChain(name));
    if (!unsure) {
      return new Map(
        unique.map((name, i) => {
          const chain = chains[i];
          return [name, chain === 'ambiguous' ? undefined : chain];
        }),
      );
    }
  }
  // Not registered: nothing to list, and asking would create it.
  if (backend === 'legacy' && !(await legacyTableNames(runner, family)).includes('filter')) {
    return new Map(unique.map((name) => [name, undefined]));
  }
  const table = await listTable(runner, backend, family, 'filter', new Set(unique));
  return new Map(unique.map((name) => [name, table.chains.get(name)]));
}

/**
 * Some ipsets, each read alone (`ipset save NAME`): each name maps to the set, or to undefined
 * when it does not exist (or is of a type moat does not read).
 */
export async function readIpsetsNamed(
  runner: CommandRunner,
  names: readonly string[],
): Promise<ReadonlyMap<string, LiveIpset | undefined>> {
  const unique = [...new Set(names)];
  const sets = await Promise.all(
    unique.map(async (name) => {
      const result = await runIpset(runner, ['save', name]);
      if (result.exitCode !== 0) {
        if (result.stderr.includes('The set with the given name does not exist')) return undefined;
        throw new SubprocessError(`ipset save ${name}`, result.exitCode, result.stderr);
      }
      return parseIpsetSave(result.stdout).get(name);
    }),
  );
  return new Map(unique.map((name, i) => [name, sets[i]]));
}
