/**
 * Everything plan needs from a host: the live netfilter state, the Docker inventory and the few
 * facts compile needs, read either from the live host or from a snapshot directory.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../core/errors.js';
import type { CommandRunner } from '../core/runner.js';
import type { Inventory } from '../docker/model.js';
import { readInventory } from '../docker/inventory.js';
import { resolveDockerEndpoint } from '../docker/endpoint.js';
import { detectBackend, type BackendChoice } from '../netfilter/backend.js';
import type { IptablesBackend, LiveNetfilter } from '../netfilter/model.js';
import { parseIpsetSave } from '../netfilter/parse-ipset.js';
import { parseSave } from '../netfilter/parse-save.js';
import { readLiveNetfilter } from '../netfilter/read.js';
import { renderSave } from '../netfilter/render-save.js';

export interface HostState {
  readonly live: LiveNetfilter;
  readonly inventory: Inventory;
}

export interface LiveHostOptions {
  readonly runner: CommandRunner;
  readonly backend: BackendChoice;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export interface LiveHost {
  readonly backend: IptablesBackend;
  readLive(): Promise<LiveNetfilter>;
  readInventory(): Promise<Inventory>;
}

export async function openLiveHost(options: LiveHostOptions): Promise<LiveHost> {
  const backend = await detectBackend(options.runner, options.backend);
  const endpoint = resolveDockerEndpoint(options.env);
  return {
    backend,
    readLive: () => readLiveNetfilter(options.runner, backend),
    readInventory: () => readInventory(endpoint),
  };
}

// Snapshot files: plain text a person can read and a PR pipeline can commit.
const FILES = {
  ipv4: 'iptables-save.txt',
  ipv6: 'ip6tables-save.txt',
  ipsets: 'ipset-save.txt',
  inventory: 'docker-inventory.json',
  meta: 'meta.json',
} as const;

export interface SnapshotMeta {
  readonly moat_snapshot: 1;
  readonly backend: IptablesBackend;
  readonly taken_at: string;
  readonly tool_version: string;
}

async function readText(dir: string, name: string): Promise<string> {
  try {
    return await readFile(join(dir, name), 'utf8');
  } catch {
    throw new UserError(
      `snapshot ${dir}: cannot read ${name}; was it written by \`moat snapshot --out ${dir}\`?`,
      'bad-snapshot',
    );
  }
}

export async function readSnapshot(dir: string): Promise<HostState & { meta: SnapshotMeta }> {
  const meta = JSON.parse(await readText(dir, FILES.meta)) as SnapshotMeta;
  if (meta.moat_snapshot !== 1)
    throw new UserError(`snapshot ${dir}: unknown snapshot format`, 'bad-snapshot');
  const ipsets = parseIpsetSave(await readText(dir, FILES.ipsets));
  const live: LiveNetfilter = {
    backend: meta.backend,
    rulesets: {
      ipv4: parseSave(await readText(dir, FILES.ipv4), 'ipv4'),
      ipv6: parseSave(await readText(dir, FILES.ipv6), 'ipv6'),
    },
    ipsets,
  };
  const inventory = JSON.parse(await readText(dir, FILES.inventory)) as Inventory;
  return { live, inventory, meta };
}

function renderIpsets(live: LiveNetfilter): string {
  const lines: string[] = [];
  for (const set of live.ipsets.values()) {
    const family = set.family === 'ipv4' ? 'inet' : 'inet6';
    lines.push(
      `create ${set.name} ${set.type} family ${family}${set.options === '' ? '' : ` ${set.options}`}`,
    );
    for (const m of set.members) lines.push(`add ${set.name} ${m}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}

export async function writeSnapshot(
  dir: string,
  state: HostState,
  meta: Omit<SnapshotMeta, 'moat_snapshot'>,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, FILES.ipv4), renderSave(state.live.rulesets.ipv4));
  await writeFile(join(dir, FILES.ipv6), renderSave(state.live.rulesets.ipv6));
  await writeFile(join(dir, FILES.ipsets), renderIpsets(state.live));
  await writeFile(join(dir, FILES.inventory), JSON.stringify(state.inventory, null, 2) + '\n');
  await writeFile(
    join(dir, FILES.meta),
    JSON.stringify({ moat_snapshot: 1, ...meta }, null, 2) + '\n',
  );
}
