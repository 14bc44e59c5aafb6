/**
 * Everything plan needs from a host: the live netfilter state, the Docker inventory and the few
 * facts compile needs, read either from the live host or from a snapshot directory.
 */
import type { CommandRunner } from '../core/runner.js';
import type { Inventory } from '../docker/model.js';
import { readInventory } from '../docker/inventory.js';
import { resolveDockerEndpoint, type DockerEndpoint } from '../docker/endpoint.js';
import { detectBackend, type BackendChoice } from '../netfilter/backend.js';
import type { IptablesBackend, LiveNetfilter } from '../netfilter/model.js';
import { parseNftJson } from '../netfilter/parse-nft.js';
import { readLiveNetfilter, readNftRuleset } from '../netfilter/read.js';

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
  readonly runner: CommandRunner;
  readonly endpoint: DockerEndpoint;
  readLive(): Promise<LiveNetfilter>;
  readInventory(): Promise<Inventory>;
  /** Netfilter and Docker at once; the nft ruleset too where Docker uses nftables. */
  readState(): Promise<HostState>;
}

/** Whether moat must look at the nft ruleset: Docker's own rules live there. */
export function dockerUsesNftables(inventory: Inventory): boolean {
  return inventory.daemon?.firewallBackend === 'nftables';
}

async function readState(
  runner: CommandRunner,
  readLive: () => Promise<LiveNetfilter>,
  readDocker: () => Promise<Inventory>,
): Promise<HostState> {
  const [live, inventory] = await Promise.all([readLive(), readDocker()]);
  if (!dockerUsesNftables(inventory)) return { live, inventory };
  const nft = await readNftRuleset(runner);
  return { live: nft === undefined ? live : { ...live, nftables: parseNftJson(nft) }, inventory };
}

export async function openLiveHost(options: LiveHostOptions): Promise<LiveHost> {
  const backend = await detectBackend(options.runner, options.backend);
  const endpoint = resolveDockerEndpoint(options.env);
  const readLive = () => readLiveNetfilter(options.runner, backend);
  const readDocker = () => readInventory(endpoint);
  return {
    backend,
    runner: options.runner,
    endpoint,
    readLive,
    readInventory: readDocker,
    readState: () => readState(options.runner, readLive, readDocker),
  };
}
