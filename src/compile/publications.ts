/**
 * What Docker opens to the outside, read off the inventory: each published port of each running
 * container, as a DNATed host port or (on a `routed` network) the container's own address and
 * port, and the bridges Docker's containers hang off. Pure.
 */
import type { DockerContainer, DockerNetwork, Inventory, PublishedPort } from '../docker/model.js';
import { FAMILIES, type Family, type Protocol } from '../policy/model.js';
import type { PublicationPath } from './model.js';

/** A container attached to a bridge network, with its address there per family. */
export interface BridgeMember {
  readonly container: DockerContainer;
  readonly network: DockerNetwork;
  /** The Linux bridge interface. */
  readonly bridge: string;
  readonly addresses: Readonly<Partial<Record<Family, string>>>;
}

/** A published port of one container, before the policy is applied to it. */
export interface RawPublication {
  readonly container: DockerContainer;
  readonly protocol: Protocol;
  readonly via: 'dnat' | 'routed';
  readonly port: number;
  readonly containerPort: number;
  /** Host addresses Docker publishes a DNATed port on. */
  readonly hostIps: readonly string[];
}

export function isLoopback(hostIp: string): boolean {
  return hostIp.startsWith('127.') || hostIp === '::1';
}

function isPolicyProtocol(p: PublishedPort): p is PublishedPort & { protocol: Protocol } {
  return p.protocol === 'tcp' || p.protocol === 'udp';
}

export function runningContainers(inventory: Inventory): DockerContainer[] {
  return inventory.containers.filter((c) => c.state === 'running');
}

/** Every running container's attachment to a bridge network. */
export function bridgeMembers(inventory: Inventory): BridgeMember[] {
  const networks = new Map(inventory.networks.map((n) => [n.id, n] as const));
  const byName = new Map(inventory.networks.map((n) => [n.name, n] as const));
  const out: BridgeMember[] = [];
  for (const container of runningContainers(inventory)) {
    for (const a of container.attachments) {
      const network = networks.get(a.networkId) ?? byName.get(a.network);
      if (network?.bridge === undefined) continue;
      out.push({
        container,
        network,
        bridge: network.bridge,
        addresses: {
          ...(a.ipv4 === undefined ? {} : { ipv4: a.ipv4 }),
          ...(a.ipv6 === undefined ? {} : { ipv6: a.ipv6 }),
        },
      });
    }
  }
  return out;
}

/**
 * Whether Docker routes a binding instead of DNATing it: every network the container is on is
 * in gateway mode `routed` for the binding's family. Docker then lists the host port it was
 * asked for but maps none; the container's own port is what clients reach.
 */
function routedBinding(inventory: Inventory, container: DockerContainer, hostIp: string): boolean {
  const family: Family = hostIp.includes(':') ? 'ipv6' : 'ipv4';
  const modes = container.attachments.map(
    (a) =>
      inventory.networks.find((n) => n.id === a.networkId || n.name === a.network)?.gatewayMode[
        family
      ],
  );
  return modes.length > 0 && modes.every((m) => m === 'routed');
}

/** Published tcp/udp ports of running containers, one entry per container, path and port. */
export function rawPublications(inventory: Inventory): RawPublication[] {
  const out = new Map<string, RawPublication>();
  for (const container of runningContainers(inventory)) {
    for (const p of container.ports) {
      if (!isPolicyProtocol(p)) continue;
      const via =
        p.hostPort === undefined || routedBinding(inventory, container, p.hostIp)
          ? 'routed'
          : 'dnat';
      const port = via === 'dnat' ? (p.hostPort ?? p.containerPort) : p.containerPort;
      const key = `${container.id}|${via}|${p.protocol}|${port}|${p.containerPort}`;
      const seen = out.get(key);
      const hostIps = via === 'dnat' ? [...(seen?.hostIps ?? []), p.hostIp] : [];
      out.set(key, {
        container,
        protocol: p.protocol,
        via,
        port,
        containerPort: p.containerPort,
        hostIps: [...new Set(hostIps)].sort(),
      });
    }
  }
  return [...out.values()];
}

/** The families a DNATed port is published in (loopback addresses are the host's alone). */
export function publishedFamilies(hostIps: readonly string[]): Family[] {
  const out = new Set<Family>();
  for (const ip of hostIps) {
    if (isLoopback(ip)) continue;
    out.add(ip.includes(':') ? 'ipv6' : 'ipv4');
  }
  return FAMILIES.filter((f) => out.has(f));
}

/**
 * How a client elsewhere reaches a publication, per family: a DNATed port through the
 * container's bridge (and, on a `nat-unprotected` network, at the container's address too), or
 * through docker-proxy where Docker does not DNAT that family; a routed one at each of the
 * container's routed addresses.
 */
export function pathsOf(
  publication: RawPublication,
  members: readonly BridgeMember[],
  ipv6Dnat: boolean,
): PublicationPath[] {
  const mine = members.filter((m) => m.container.id === publication.container.id);
  const out: PublicationPath[] = [];
  if (publication.via === 'routed') {
    for (const m of mine)
      for (const family of FAMILIES) {
        const destination = m.addresses[family];
        if (destination !== undefined && m.network.gatewayMode[family] === 'routed')
          out.push({ family, path: 'direct', outInterface: m.bridge, destination });
      }
    return out;
  }
  for (const family of publishedFamilies(publication.hostIps)) {
    const m = mine.find((x) => {
      const mode = x.network.gatewayMode[family];
      return x.addresses[family] !== undefined && mode !== 'routed' && mode !== 'isolated';
    });
    const destination = m?.addresses[family];
    if (m === undefined || destination === undefined || (family === 'ipv6' && !ipv6Dnat)) {
      if (family === 'ipv6') out.push({ family, path: 'proxy' });
      continue;
    }
    out.push({ family, path: 'dnat', outInterface: m.bridge, destination });
    if (m.network.gatewayMode[family] === 'nat-unprotected')
      out.push({ family, path: 'direct', outInterface: m.bridge, destination });
  }
  return out;
}
