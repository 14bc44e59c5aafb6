/**
 * The World the packet-path evaluator reads, from a live host or a snapshot: every table of
 * both families (iptables-save, not only filter), ipsets, the Docker inventory and the network
 * facts of src/host/capture.ts, and nft's tables and base chains (nft-only tables the evaluator
 * does not model; a live host's from `nft -j list chains`, which lists no rule).
 * `moat plan` needs both the World (its cross-check) and the state a plan is made from: it reads
 * the host once and takes the state as a view of the World (readForPlan).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../core/errors.js';
import { runChecked, type CommandRunner } from '../core/runner.js';
import { buildWorld } from '../explain/capture.js';
import type { World } from '../explain/model.js';
import { toolFor } from '../netfilter/backend.js';
import type { LiveIpset, LiveNetfilter, LiveRuleset } from '../netfilter/model.js';
import { parseIpsetSave } from '../netfilter/parse-ipset.js';
import { parseSaveDetailed } from '../netfilter/parse-save.js';
import { readIpsets, readNftChains } from '../netfilter/read.js';
import { FAMILIES, type Family } from '../policy/model.js';
import { captureNetwork, optional, readCapture } from './capture.js';
import { dockerUsesNftables, type HostState, type LiveHost } from './read-host.js';
import { readSnapshot } from './snapshot.js';

async function saveText(dir: string, family: Family): Promise<string> {
  const name = family === 'ipv4' ? 'iptables-save.txt' : 'ip6tables-save.txt';
  try {
    return await readFile(join(dir, name), 'utf8');
  } catch {
    throw new UserError(`snapshot ${dir}: cannot read ${name}`, 'bad-snapshot');
  }
}

/** The rulesets of both families' save output, and the notices printed with them. */
function parseSaves(texts: Readonly<Record<Family, string>>): {
  rulesets: Record<Family, LiveRuleset>;
  warnings: Record<Family, readonly string[]>;
} {
  const rulesets = {} as Record<Family, LiveRuleset>;
  const warnings = {} as Record<Family, readonly string[]>;
  for (const family of FAMILIES) {
    const parsed = parseSaveDetailed(texts[family], family);
    rulesets[family] = parsed.ruleset;
    warnings[family] = parsed.warnings;
  }
  return { rulesets, warnings };
}

/** The host read once: the World, and the state a plan is made from. */
export interface HostRead {
  readonly world: World;
  readonly state: HostState;
}

/** A snapshot directory's state (as plan reads it) and its World (its save files hold every table). */
async function readSnapshotHost(dir: string): Promise<HostRead> {
  const reading = readSnapshot(dir);
  const rest = Promise.all([readCapture(dir), saveText(dir, 'ipv4'), saveText(dir, 'ipv6')]);
  rest.catch(() => undefined);
  // readSnapshot's error comes first: it says what is wrong with the directory (no meta.json).
  const state = await reading;
  const [capture, ipv4, ipv6] = await rest;
  const world = buildWorld(
    state.live,
    state.inventory,
    capture,
    parseSaves({ ipv4, ipv6 }).warnings,
  );
  return { world, state };
}

/** The World of a snapshot directory. */
export async function readWorldFromSnapshot(dir: string): Promise<World> {
  return (await readSnapshotHost(dir)).world;
}

/** How a World's ipsets are read from a live host. */
type IpsetReader = (runner: CommandRunner) => Promise<ReadonlyMap<string, LiveIpset>>;

/** Every set `ipset save` shows; none where it fails, so the evaluator still answers. */
const ipsetsIfReadable: IpsetReader = async (runner) =>
  parseIpsetSave((await optional(runner, 'ipset', ['save'])) ?? '');

async function worldOfHost(host: LiveHost, readSets: IpsetReader): Promise<World> {
  const save = (family: Family) =>
    runChecked(host.runner, toolFor(host.backend, family, 'save'), []).then((r) => r.stdout);
  const [ipv4, ipv6, ipsets, nftables, inventory, capture] = await Promise.all([
    save('ipv4'),
    save('ipv6'),
    readSets(host.runner),
    readNftChains(host.runner),
    host.readInventory(),
    captureNetwork(host.runner),
  ]);
  const { rulesets, warnings } = parseSaves({ ipv4, ipv6 });
  const live: LiveNetfilter = {
    backend: host.backend,
    rulesets,
    ipsets,
    ...(nftables === undefined ? {} : { nftables }),
  };
  return buildWorld(live, inventory, capture, warnings);
}

/**
 * The World of the live host: both families saved whole, ipsets, nft's tables and base chains,
 * Docker, the network facts.
 */
export function readWorldFromHost(host: LiveHost): Promise<World> {
  return worldOfHost(host, ipsetsIfReadable);
}

/** Only the filter table: what plan lists of a live host (src/netfilter/read.ts). */
function filterTable(ruleset: LiveRuleset): LiveRuleset {
  const filter = ruleset.tables.get('filter');
  return {
    family: ruleset.family,
    tables: new Map(filter === undefined ? [] : [[filter.name, filter]]),
  };
}

/**
 * The state plan reads from a live host (LiveHost.readState), as a view of the World read from
 * it: both families' filter tables, every ipset, nft's base chains only where Docker uses nftables.
 */
function liveStateOf(world: World, system: HostState['system']): HostState {
  const { netfilter, inventory } = world;
  const nftables = dockerUsesNftables(inventory) ? netfilter.nftables : undefined;
  const live: LiveNetfilter = {
    backend: netfilter.backend,
    rulesets: {
      ipv4: filterTable(netfilter.rulesets.ipv4),
      ipv6: filterTable(netfilter.rulesets.ipv6),
    },
    ipsets: netfilter.ipsets,
    ...(nftables === undefined ? {} : { nftables }),
  };
  return { live, inventory, ...(system === undefined ? {} : { system }) };
}

/**
 * What `moat plan` reads, each source once: the World its cross-check evaluates, and the state
 * the plan is made from (on a live host a view of that World plus the /proc facts; from a
 * snapshot, what readSnapshot gives).
 */
export async function readForPlan(source: LiveHost | { snapshot: string }): Promise<HostRead> {
  if ('snapshot' in source) return readSnapshotHost(source.snapshot);
  // A plan must not take sets it could not read for sets that are absent (it would create them).
  const [world, system] = await Promise.all([worldOfHost(source, readIpsets), source.readSystem()]);
  return { world, state: liveStateOf(world, system) };
}
