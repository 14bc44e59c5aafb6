/**
 * Bindings Docker routes instead of DNATing. A `-p` on a network whose gateway mode is `routed`
 * for a family opens the container's own address and port; Docker 28 lists such a binding in
 * `GET /containers/json` without a host port, Docker 29 leaves it out of that list altogether
 * (measured on 29.7.2). The container's own answer (`GET /containers/{id}/json`,
 * `NetworkSettings.Ports`) still has it, with an empty `HostPort`.
 *
 * Pure: which containers need that second question, and the list answer with what their answers
 * hold added in the shape Docker 28 used, so the rest of moat (and a snapshot) sees one shape.
 */
import type { Inventory } from './model.js';
import { isObject } from '../core/json.js';

type Json = Record<string, unknown>;

/** Ids of the containers attached to a network that routes either family. */
export function containersToInspect(inventory: Inventory): string[] {
  const routed = new Set(
    inventory.networks
      .filter((n) => n.gatewayMode.ipv4 === 'routed' || n.gatewayMode.ipv6 === 'routed')
      .map((n) => n.id),
  );
  return inventory.containers
    .filter((c) => c.attachments.some((a) => routed.has(a.networkId)))
    .map((c) => c.id);
}

const PORT_KEY = /^(\d{1,5})\/(tcp|udp|sctp)$/;

/** `{"80/tcp": [{"HostIp": "::", "HostPort": ""}]}` → the list answer's entries without a host port. */
function routedEntries(inspected: unknown): Json[] {
  const settings = isObject(inspected) ? inspected.NetworkSettings : undefined;
  const ports = isObject(settings) ? settings.Ports : undefined;
  if (!isObject(ports)) return [];
  const entries: Json[] = [];
  for (const [key, bindings] of Object.entries(ports)) {
    const match = PORT_KEY.exec(key);
    if (match === null || !Array.isArray(bindings)) continue;
    for (const binding of bindings) {
      if (!isObject(binding) || (binding.HostPort !== '' && binding.HostPort !== undefined))
        continue;
      // The address is checked where every listed one is (normalize.ts).
      entries.push({ IP: binding.HostIp, PrivatePort: Number(match[1]), Type: match[2] });
    }
  }
  return entries;
}

function sameEntry(a: Json, b: Json): boolean {
  const mapped = (e: Json) => e.PublicPort !== undefined && e.PublicPort !== null;
  return a.IP === b.IP && a.PrivatePort === b.PrivatePort && a.Type === b.Type && !mapped(a);
}

/**
 * The list answer with each inspected container's routed bindings added to its `Ports` (those
 * already listed, as Docker 28 lists them, are not added twice). Anything not shaped as expected
 * is left for normalize.ts to report.
 */
export function withRoutedBindings(
  containers: unknown,
  inspected: ReadonlyMap<string, unknown>,
): unknown {
  if (!Array.isArray(containers) || inspected.size === 0) return containers;
  return containers.map((container: unknown) => {
    if (!isObject(container) || typeof container.Id !== 'string') return container;
    const answer = inspected.get(container.Id);
    if (answer === undefined) return container;
    const listed = Array.isArray(container.Ports) ? (container.Ports as unknown[]) : [];
    const added = routedEntries(answer).filter(
      (entry) => !listed.some((l) => isObject(l) && sameEntry(l, entry)),
    );
    return added.length === 0 ? container : { ...container, Ports: [...listed, ...added] };
  });
}
