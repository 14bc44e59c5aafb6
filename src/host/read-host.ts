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
import { readLiveNetfilter, readNftChains } from '../netfilter/read.js';
import { readHostSystem, type HostSystem } from './system.js';

export interface HostState {
  readonly live: LiveNetfilter;
  readonly inventory: Inventory;
  /** Interfaces and listening sockets; absent from snapshots that did not record them. */
  readonly system?: HostSystem;
}

export interface LiveHostOptions {
  readonly runner: CommandRunner;
  /** How interfaces and sockets are read; /proc unless a test says otherwise. */
  readonly readSystem?: () => Promise<HostSystem>;
  readonly backend: BackendChoice;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export interface LiveHost {
  readonly backend: IptablesBackend;
  readonly runner: CommandRunner;
  readonly endpoint: DockerEndpoint;
  readLive(): Promise<LiveNetfilter>;
  readInventory(): Promise<Inventory>;
  readSystem(): Promise<HostSystem>;
  /** Netfilter, Docker and the system at once; nft's base chains too where Docker uses nftables. */
  readState(): Promise<HostState>;
}

/** Whether moat must look at nft's base chains: Docker's own rules live in nft tables. */
export function dockerUsesNftables(inventory: Inventory): boolean {
  return inventory.daemon?.firewallBackend === 'nftables';
}

async function readState(host: Omit<LiveHost, 'readState'>): Promise<HostState> {
  const [live, inventory, system] = await Promise.all([
    host.readLive(),
    host.readInventory(),
    host.readSystem(),
  ]);
  if (!dockerUsesNftables(inventory)) return { live, inventory, system };
  const nftables = await readNftChains(host.runner);
  return {
    live: nftables === undefined ? live : { ...live, nftables },
    inventory,
    system,
  };
}

export async function openLiveHost(options: LiveHostOptions): Promise<LiveHost> {
  const backend = await detectBackend(options.runner, options.backend);
  const endpoint = resolveDockerEndpoint(options.env);
  const host: Omit<LiveHost, 'readState'> = {
    backend,
    runner: options.runner,
    endpoint,
    readLive: () => readLiveNetfilter(options.runner, backend),
    readInventory: () => readInventory(endpoint),
    readSystem: options.readSystem ?? readHostSystem,
  };
  return { ...host, readState: () => readState(host) };
}
