/**
 * Read the live netfilter state of the host (or of the namespace the runner's commands run in):
 * both families' iptables tables and every ipset.
 */
import { SubprocessError } from '../core/errors.js';
import type { CommandRunner } from '../core/runner.js';
import { runChecked } from '../host/exec-runner.js';
import type { Family } from '../policy/model.js';
import { legacyTableNames, toolFor } from './backend.js';
import type { IptablesBackend, LiveIpset, LiveNetfilter, LiveRuleset, LiveTable } from './model.js';
import { parseIpsetSave } from './parse-ipset.js';
import { parseSave } from './parse-save.js';

const DEFAULT_TABLES: readonly string[] = ['filter'];

async function readFamily(
  runner: CommandRunner,
  backend: IptablesBackend,
  family: Family,
  tables: readonly string[],
): Promise<LiveRuleset> {
  // A legacy table that is not registered yet would be created (and its module loaded) by
  // asking for it; an absent table holds nothing, so skip it.
  const present = backend === 'legacy' ? await legacyTableNames(runner, family) : undefined;
  const out = new Map<string, LiveTable>();
  for (const name of tables) {
    if (present !== undefined && !present.includes(name)) continue;
    const save = await runChecked(runner, toolFor(backend, family, 'save'), ['-t', name]);
    for (const table of parseSave(save.stdout, family).tables.values()) out.set(table.name, table);
  }
  return { family, tables: out };
}

async function readIpsets(runner: CommandRunner): Promise<Map<string, LiveIpset>> {
  let result;
  try {
    result = await runner('ipset', ['save']);
  } catch (error) {
    // No ipset binary: no sets can exist that moat or a policy could use.
    if (error instanceof SubprocessError && error.commandExitCode === undefined) return new Map();
    throw error;
  }
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
