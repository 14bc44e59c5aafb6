/**
 * The host a read-only command looks at: the live one (the filter tables, ipsets and the Docker
 * API, through the context's runner) or a snapshot directory written by `moat snapshot`.
 */
import type { Inventory } from '../docker/model.js';
import { openLiveHost, type HostState } from '../host/read-host.js';
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
  const host = await openLiveHost({
    runner: ctx.runner,
    backend: source.backend,
    env: ctx.env,
    ...(ctx.readSystem === undefined ? {} : { readSystem: ctx.readSystem }),
  });
  const [live, inventory, system] = await Promise.all([
    host.readLive(),
    host.readInventory(),
    host.readSystem(),
  ]);
  return { live, inventory, system };
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
