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
import { readLiveNetfilter } from '../netfilter/read.js';
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
}

export async function openLiveHost(options: LiveHostOptions): Promise<LiveHost> {
  const backend = await detectBackend(options.runner, options.backend);
  const endpoint = resolveDockerEndpoint(options.env);
  return {
    backend,
    runner: options.runner,
    endpoint,
    readLive: () => readLiveNetfilter(options.runner, backend),
    readInventory: () => readInventory(endpoint),
    readSystem: options.readSystem ?? readHostSystem,
  };
}
