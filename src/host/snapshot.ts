/**
 * Snapshots: everything plan needs from a host, as the plain files its tools printed, so a
 * pull-request pipeline can plan for a host it cannot touch (`moat plan --snapshot DIR`). The
 * nft ruleset too (when nft is installed), so an offline plan makes the same checks of Docker's
 * nftables backend as a live one. Snapshots from before a file existed still load.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MoatError, UserError } from '../core/errors.js';
import { runChecked } from '../core/runner.js';
import { infoForSnapshot } from '../docker/daemon.js';
import { inventoryFromAnswers, readDockerAnswers } from '../docker/inventory.js';
import { inventoryFromApi } from '../docker/normalize.js';
import { toolFor } from '../netfilter/backend.js';
import type { IptablesBackend, LiveNetfilter } from '../netfilter/model.js';
import { parseIpsetSave } from '../netfilter/parse-ipset.js';
import { parseNftJson } from '../netfilter/parse-nft.js';
import { parseSave } from '../netfilter/parse-save.js';
import { readNftRuleset } from '../netfilter/read.js';
import type { Listener } from '../compile/host-facts.js';
import { captureNetwork, writeCapture } from './capture.js';
import type { HostState, LiveHost } from './read-host.js';
import { nameListeners, readListeners, type HostSystem } from './system.js';

const FILES = {
  ipv4: 'iptables-save.txt',
  ipv6: 'ip6tables-save.txt',
  ipsets: 'ipset-save.txt',
  /** `GET /containers/json`, with Docker 29's routed bindings added (docker/routed.ts). */
  containers: 'docker-containers.json',
  networks: 'docker-networks.json',
  /** The fields of `GET /info` moat reads (release, firewall backend). */
  info: 'docker-info.json',
  /** `nft -j list ruleset`, where nft is installed. */
  nftables: 'nftables-ruleset.json',
  addresses: 'ip-addr.json',
  listeners: 'listeners.json',
  meta: 'meta.json',
} as const;

export interface SnapshotMeta {
  readonly moat_snapshot: 1;
  readonly backend: IptablesBackend;
  readonly taken_at: string;
  readonly tool_version: string;
  readonly iptables_version: string;
  readonly docker_api_version: string;
  /** For people reading the snapshot; plan reads docker-info.json. */
  readonly docker_version?: string;
  readonly docker_firewall_backend?: string;
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

/** A file that older snapshots (or hosts without the tool) lack: undefined then. */
async function readOptionalText(dir: string, name: string): Promise<string | undefined> {
  try {
    return await readFile(join(dir, name), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return readText(dir, name); // reports it as unreadable
  }
}

function parseJson(dir: string, name: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UserError(`snapshot ${dir}: ${name} is not valid JSON`, 'bad-snapshot');
  }
}

async function readJson(dir: string, name: string): Promise<unknown> {
  return parseJson(dir, name, await readText(dir, name));
}

function snapshotError(dir: string, name: string, error: unknown): never {
  if (error instanceof MoatError)
    throw new UserError(`snapshot ${dir}, ${name}: ${error.message}`, 'bad-snapshot');
  throw error;
}

export async function readSnapshot(dir: string): Promise<HostState> {
  const meta = (await readJson(dir, FILES.meta)) as Partial<SnapshotMeta> | null;
  if (
    meta === null ||
    meta.moat_snapshot !== 1 ||
    (meta.backend !== 'nft' && meta.backend !== 'legacy')
  ) {
    throw new UserError(
      `snapshot ${dir}: ${FILES.meta} is not a moat snapshot (format 1)`,
      'bad-snapshot',
    );
  }
  const parse = async <T>(name: string, read: (text: string) => T): Promise<T> => {
    const text = await readText(dir, name);
    try {
      return read(text);
    } catch (error) {
      return snapshotError(dir, name, error);
    }
  };
  const nft = await readOptionalText(dir, FILES.nftables);
  const live: LiveNetfilter = {
    backend: meta.backend,
    rulesets: {
      ipv4: await parse(FILES.ipv4, (t) => parseSave(t, 'ipv4')),
      ipv6: await parse(FILES.ipv6, (t) => parseSave(t, 'ipv6')),
    },
    ipsets: await parse(FILES.ipsets, parseIpsetSave),
    ...(nft === undefined ? {} : { nftables: await parse(FILES.nftables, parseNftJson) }),
  };
  const [containers, networks] = [
    await readJson(dir, FILES.containers),
    await readJson(dir, FILES.networks),
  ];
  const infoText = await readOptionalText(dir, FILES.info);
  const info = infoText === undefined ? undefined : parseJson(dir, FILES.info, infoText);
  let inventory;
  try {
    inventory =
      info === undefined
        ? inventoryFromApi(containers, networks)
        : inventoryFromAnswers({ containers, networks, info });
  } catch (error) {
    return snapshotError(dir, `${FILES.containers}/${FILES.networks}/${FILES.info}`, error);
  }
  return { live, inventory, system: await readSystemFacts(dir) };
}

/** Interfaces from `ip -j addr`; listening sockets if the snapshot recorded them. */
async function readSystemFacts(dir: string): Promise<HostSystem> {
  const addresses = await readJson(dir, FILES.addresses);
  const interfaces = Array.isArray(addresses)
    ? addresses
        .map((a) => (a as { ifname?: unknown }).ifname)
        .filter((n): n is string => typeof n === 'string')
        .sort()
    : undefined;
  let listeners: Listener[] | undefined;
  try {
    listeners = JSON.parse(await readFile(join(dir, FILES.listeners), 'utf8')) as Listener[];
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOENT')
      throw new UserError(`snapshot ${dir}: ${FILES.listeners} is not valid JSON`, 'bad-snapshot');
  }
  if (listeners !== undefined && !validListeners(listeners))
    throw new UserError(
      `snapshot ${dir}: ${FILES.listeners} is not a list of sockets`,
      'bad-snapshot',
    );
  return {
    ...(interfaces === undefined ? {} : { interfaces }),
    ...(listeners === undefined ? {} : { listeners }),
  };
}

function validListeners(value: unknown): value is Listener[] {
  return (
    Array.isArray(value) &&
    value.every((l: Partial<Listener>) => {
      const owners: unknown = l.owners;
      return (
        (l.protocol === 'tcp' || l.protocol === 'udp') &&
        typeof l.port === 'number' &&
        typeof l.address === 'string' &&
        Array.isArray(owners) &&
        owners.every((o: Partial<Listener['owners'][number]>) => {
          return typeof o.pid === 'number' && typeof o.command === 'string';
        })
      );
    })
  );
}

/** Captures the host's state into `dir`: what each tool printed, verbatim. Returns its meta. */
export async function writeSnapshot(
  dir: string,
  host: LiveHost,
  toolVersion: string,
): Promise<SnapshotMeta> {
  const run = async (command: string, args: readonly string[]): Promise<string> =>
    (await runChecked(host.runner, command, args)).stdout;
  const ipv4 = await run(toolFor(host.backend, 'ipv4', 'save'), []);
  const ipv6 = await run(toolFor(host.backend, 'ipv6', 'save'), []);
  const ipsets = await host.runner('ipset', ['save']);
  const addresses = await host.runner('ip', ['-j', 'addr', 'show']);
  const sockets = await readListeners();
  const listeners =
    sockets === undefined
      ? undefined
      : (await nameListeners(sockets)).map((l) => ({
          protocol: l.protocol,
          address: l.address,
          port: l.port,
          owners: l.owners,
        }));
  const version = await run(toolFor(host.backend, 'ipv4', 'save').replace('-save', ''), [
    '--version',
  ]);
  const docker = await readDockerAnswers(host.endpoint);
  // Routes, sockets, sysctls…: what `moat explain --state` and `moat test` read.
  const network = await captureNetwork(host.runner);
  // Fail before writing anything if the capture would not load again.
  parseSave(ipv4, 'ipv4');
  parseSave(ipv6, 'ipv6');
  const inventory = inventoryFromAnswers(docker);
  const nft = await readNftRuleset(host.runner);
  if (nft !== undefined) parseNftJson(nft);

  const meta: SnapshotMeta = {
    moat_snapshot: 1,
    backend: host.backend,
    taken_at: new Date().toISOString(),
    tool_version: toolVersion,
    iptables_version: version.trim(),
    docker_api_version: docker.apiVersion,
    ...(inventory.daemon === undefined
      ? {}
      : {
          docker_version: inventory.daemon.version,
          docker_firewall_backend: inventory.daemon.firewallBackend,
        }),
  };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, FILES.ipv4), ipv4);
  await writeFile(join(dir, FILES.ipv6), ipv6);
  await writeFile(join(dir, FILES.ipsets), ipsets.exitCode === 0 ? ipsets.stdout : '');
  await writeFile(join(dir, FILES.addresses), addresses.exitCode === 0 ? addresses.stdout : '[]\n');
  await writeFile(join(dir, FILES.containers), JSON.stringify(docker.containers, null, 2) + '\n');
  await writeFile(join(dir, FILES.networks), JSON.stringify(docker.networks, null, 2) + '\n');
  const info = JSON.stringify(infoForSnapshot(docker.info), null, 2);
  await writeFile(join(dir, FILES.info), info + '\n');
  if (nft !== undefined) await writeFile(join(dir, FILES.nftables), nft);
  if (listeners !== undefined)
    await writeFile(join(dir, FILES.listeners), JSON.stringify(listeners, null, 2) + '\n');
  await writeCapture(dir, network);
  await writeFile(join(dir, FILES.meta), JSON.stringify(meta, null, 2) + '\n');
  return meta;
}
