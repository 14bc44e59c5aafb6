/**
 * The host a read-only command looks at: the live one (the filter tables, ipsets and the Docker
 * API, through the context's runner) or a snapshot directory written by `moat snapshot`.
 */
import type { Inventory } from '../docker/model.js';
import type { World } from '../explain/model.js';
import type { HostRead } from '../host/world.js';
import { openLiveHost, type HostState, type LiveHost } from '../host/read-host.js';
import type { Context, HostOptions } from './context.js';

export interface HostSource extends HostOptions {
  /** A snapshot directory to read instead of the live host. */
  readonly snapshot?: string;
}

export async function readHostState(ctx: Context, source: HostSource): Promise<HostState> {
  if (source.snapshot !== undefined) {
    const { readSnapshot } = await import('../host/snapshot.js');
    return readSnapshot(source.snapshot);
  }
  return (await openHost(ctx, source.backend)).readState();
}

/** The live host, read through the context's runner (and its fixed /proc facts in tests). */
export function openHost(ctx: Context, backend: HostOptions['backend']): Promise<LiveHost> {
  return openLiveHost({
    runner: ctx.runner,
    backend,
    env: ctx.env,
    ...(ctx.readSystem === undefined ? {} : { readSystem: ctx.readSystem }),
  });
}

/** Only the containers: from the Docker API, or from a snapshot. */
export async function readContainers(ctx: Context, snapshot?: string): Promise<Inventory> {
  if (snapshot !== undefined) {
    const { readSnapshot } = await import('../host/snapshot.js');
    return (await readSnapshot(snapshot)).inventory;
  }
  const [{ resolveDockerEndpoint }, { readInventory }] = await Promise.all([
    import('../docker/endpoint.js'),
    import('../docker/inventory.js'),
  ]);
  return readInventory(resolveDockerEndpoint(ctx.env));
}

/** The whole host as the packet-path evaluator reads it: every table, ipsets, Docker, network. */
export async function readHostWorld(ctx: Context, source: HostSource): Promise<World> {
  const { readWorldFromHost, readWorldFromSnapshot } = await import('../host/world.js');
  if (source.snapshot !== undefined) return readWorldFromSnapshot(source.snapshot);
  return readWorldFromHost(await openHost(ctx, source.backend));
}

/** What `moat plan` reads, each source once: the World for its cross-check and the plan's state. */
export async function readPlanHost(ctx: Context, source: HostSource): Promise<HostRead> {
  const { readForPlan } = await import('../host/world.js');
  if (source.snapshot !== undefined) return readForPlan({ snapshot: source.snapshot });
  return readForPlan(await openHost(ctx, source.backend));
}
