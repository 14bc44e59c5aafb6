/**
 * Which iptables backend holds the host's rules: iptables-nft (nf_tables) or iptables-legacy
 * (x_tables). Docker writes with whichever `iptables` points to; moat must read and write the
 * same one, or its rules would sit in a ruleset the packets never see.
 */
import { SubprocessError, UserError } from '../core/errors.js';
import type { CommandRunner } from '../core/runner.js';
import { FAMILIES, type Family } from '../policy/model.js';
import type { IptablesBackend, LiveRuleset } from './model.js';
import { parseSave, SaveParseError } from './parse-save.js';

export type BackendChoice = IptablesBackend | 'auto';

/** The program that lists and edits one family's rules, e.g. `ip6tables-nft`. */
export function iptablesFor(backend: IptablesBackend, family: Family): string {
  return `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}`;
}

/** The program for one backend, family and direction, e.g. `ip6tables-legacy-restore`. */
export function toolFor(
  backend: IptablesBackend,
  family: Family,
  tool: 'save' | 'restore',
): string {
  return `${iptablesFor(backend, family)}-${tool}`;
}

/**
 * The legacy tables registered in the current network namespace. Reading these /proc files
 * loads no module; running iptables-legacy-save on a host without ip_tables would (it asks the
 * kernel for the table, which autoloads ip_tables and iptable_filter).
 */
export async function legacyTableNames(
  runner: CommandRunner,
  family: Family,
): Promise<readonly string[]> {
  const file = family === 'ipv4' ? '/proc/net/ip_tables_names' : '/proc/net/ip6_tables_names';
  // Through the runner, so the read happens in the namespace the runner's commands run in.
  const result = await runner('cat', [file]);
  if (result.exitCode !== 0) return []; // no file: x_tables for this family is not loaded
  return result.stdout.split('\n').filter((name) => name !== '');
}

/** What a backend holds beyond empty built-in chains with an ACCEPT policy. */
function describeContent(ruleset: LiveRuleset): string | undefined {
  let rules = 0;
  let userChains = 0;
  const policies: string[] = [];
  for (const table of ruleset.tables.values()) {
    for (const chain of table.chains.values()) {
      rules += chain.rules.length;
      if (chain.policy === undefined) userChains++;
      else if (chain.policy !== 'ACCEPT')
        policies.push(`${table.name}/${chain.name} ${chain.policy}`);
    }
  }
  if (rules === 0 && userChains === 0 && policies.length === 0) return undefined;
  const parts = [`${rules} rule${rules === 1 ? '' : 's'}`];
  if (userChains > 0) parts.push(`${userChains} chain${userChains === 1 ? '' : 's'}`);
  if (policies.length > 0) parts.push(`policy ${policies.join(', ')}`);
  return parts.join(', ');
}

/** Runs a save program; undefined when it is not installed or cannot talk to the kernel. */
async function trySave(runner: CommandRunner, command: string): Promise<string | undefined> {
  try {
    const result = await runner(command, []);
    return result.exitCode === 0 ? result.stdout : undefined;
  } catch (error) {
    if (error instanceof SubprocessError && error.commandExitCode === undefined) return undefined;
    throw error;
  }
}

/** For each family, what the backend holds ('' parts for an empty family are left out). */
async function backendContent(
  runner: CommandRunner,
  backend: IptablesBackend,
): Promise<string | undefined> {
  const parts: string[] = [];
  for (const family of FAMILIES) {
    if (backend === 'legacy' && (await legacyTableNames(runner, family)).length === 0) continue;
    const command = toolFor(backend, family, 'save');
    const text = await trySave(runner, command);
    if (text === undefined) continue;
    let content: string | undefined;
    try {
      content = describeContent(parseSave(text, family));
    } catch (error) {
      // A table iptables cannot show is still a table in use.
      if (!(error instanceof SaveParseError)) throw error;
      content = `unreadable: ${error.message}`;
    }
    if (content !== undefined) parts.push(`${command}: ${content}`);
  }
  return parts.length === 0 ? undefined : parts.join('; ');
}

/** The backend `iptables -V` reports: `iptables v1.8.9 (nf_tables)` or `(legacy)`. */
async function defaultBackend(runner: CommandRunner): Promise<IptablesBackend> {
  let version: string;
  try {
    const result = await runner('iptables', ['-V']);
    version = `${result.stdout}${result.stderr}`;
  } catch (error) {
    if (error instanceof SubprocessError && error.commandExitCode === undefined) {
      throw new UserError(
        'iptables is not installed (no `iptables` on PATH); install it or pass --backend nft|legacy',
        'no-iptables',
      );
    }
    throw error;
  }
  // iptables before 1.8 has no nft backend and prints no suffix at all.
  return version.includes('(nf_tables)') ? 'nft' : 'legacy';
}

/**
 * The backend to use. `nft`/`legacy` are taken as given. `auto` picks the backend that holds
 * rules, refuses to guess when both do, and falls back to what `iptables -V` reports when
 * neither does. Never runs iptables-legacy-save for a family whose x_tables are not loaded.
 */
export async function detectBackend(
  runner: CommandRunner,
  choice: BackendChoice,
): Promise<IptablesBackend> {
  if (choice !== 'auto') return choice;
  // Asked at most once, and only when the answer depends on it.
  let reported: Promise<IptablesBackend> | undefined;
  const byDefault = (): Promise<IptablesBackend> => (reported ??= defaultBackend(runner));
  // The common modern host: no legacy table registered and iptables defaulting to nft. Legacy
  // then holds nothing, so the answer is nft whatever nft holds: no need to read any ruleset.
  const legacyTables = await Promise.all(FAMILIES.map((f) => legacyTableNames(runner, f)));
  if (legacyTables.every((names) => names.length === 0) && (await byDefault()) === 'nft') {
    return 'nft';
  }
  const nft = await backendContent(runner, 'nft');
  // nft holds nothing and iptables defaults to legacy: legacy is the answer whether or not it
  // holds rules, so its ruleset (the costly read on a legacy host) need not be read here.
  if (nft === undefined && (await byDefault()) === 'legacy') return 'legacy';
  const legacy = await backendContent(runner, 'legacy');
  if (nft !== undefined && legacy !== undefined) {
    throw new UserError(
      `both iptables backends hold rules on this host, so moat cannot tell which one Docker ` +
        `uses:\n  nft:    ${nft}\n  legacy: ${legacy}\n` +
        `Pass --backend nft or --backend legacy (the one \`iptables -V\` of Docker's host ` +
        `reports, usually), or remove the stale rules from the other backend.`,
      'backend-ambiguous',
    );
  }
  if (nft !== undefined) return 'nft';
  if (legacy !== undefined) return 'legacy';
  return byDefault();
}
