/**
 * The World the packet-path evaluator reads, from a live host or a snapshot: every table of
 * both families (iptables-save, not only filter), ipsets, the Docker inventory and the network
 * facts of src/host/capture.ts.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../core/errors.js';
import { runChecked } from '../core/runner.js';
import { buildWorld } from '../explain/capture.js';
import type { World } from '../explain/model.js';
import { toolFor } from '../netfilter/backend.js';
import type { LiveNetfilter, LiveRuleset } from '../netfilter/model.js';
import { parseIpsetSave } from '../netfilter/parse-ipset.js';
import { parseSaveDetailed } from '../netfilter/parse-save.js';
import { FAMILIES, type Family } from '../policy/model.js';
import { captureNetwork, optional, readCapture } from './capture.js';
import type { LiveHost } from './read-host.js';
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

/** The World of a snapshot directory (its save files hold every table). */
export async function readWorldFromSnapshot(dir: string): Promise<World> {
  const [state, capture, ipv4, ipv6] = await Promise.all([
    readSnapshot(dir),
    readCapture(dir),
    saveText(dir, 'ipv4'),
    saveText(dir, 'ipv6'),
  ]);
  return buildWorld(state.live, state.inventory, capture, parseSaves({ ipv4, ipv6 }).warnings);
}

/** The World of the live host: both families saved whole, ipsets, Docker, the network facts. */
export async function readWorldFromHost(host: LiveHost): Promise<World> {
  const save = (family: Family) =>
    runChecked(host.runner, toolFor(host.backend, family, 'save'), []).then((r) => r.stdout);
  const [ipv4, ipv6, ipsets, inventory, capture] = await Promise.all([
    save('ipv4'),
    save('ipv6'),
    optional(host.runner, 'ipset', ['save']),
    host.readInventory(),
    captureNetwork(host.runner, host.endpoint),
  ]);
  const { rulesets, warnings } = parseSaves({ ipv4, ipv6 });
  const live: LiveNetfilter = {
    backend: host.backend,
    rulesets,
    ipsets: parseIpsetSave(ipsets ?? ''),
  };
  return buildWorld(live, inventory, capture, warnings);
}
