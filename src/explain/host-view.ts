/**
 * The host's addresses, routes, bridges and containers, indexed for the packet walk: is this
 * address local, which interface does a route send it out of, which container holds it. Pure.
 */
import type { DockerContainer, DockerNetwork } from '../docker/model.js';
import type { LiveIpset, LiveRule } from '../netfilter/model.js';
import { parseRuleSpec, type ParsedRule } from '../netfilter/parse-rule.js';
import type { Family } from '../policy/model.js';
import {
  contains,
  formatPrefix,
  parseAddress,
  parsePrefix,
  prefixOf,
  prefixLength,
  type Address,
  type Prefix,
} from './address.js';
import type { HostRoute, World } from './model.js';

export type RouteAnswer =
  | { readonly kind: 'route'; readonly route: HostRoute; readonly prefix: Prefix }
  | { readonly kind: 'none' }
  | { readonly kind: 'unknown'; readonly why: string };

export interface ContainerAddress {
  readonly container: DockerContainer;
  readonly network: DockerNetwork;
  readonly address: Address;
}

const LOOPBACK: Readonly<Record<Family, string>> = { ipv4: '127.0.0.0/8', ipv6: '::1/128' };

export class HostView {
  private readonly locals: { readonly address: Address; readonly dev: string }[] = [];
  private readonly broadcasts: Address[] = [];
  private readonly routes: Record<Family, { route: HostRoute; prefix: Prefix }[]> | undefined;
  private readonly connected: { prefix: Prefix; dev: string; src: Address }[] = [];
  private readonly parsed = new WeakMap<LiveRule, ParsedRule | Error>();
  readonly bridges: ReadonlyMap<string, DockerNetwork>;

  constructor(readonly world: World) {
    for (const iface of world.network.interfaces) {
      for (const a of iface.addresses) {
        const address = parseAddress(a.address);
        if (address === undefined) continue;
        this.locals.push({ address, dev: iface.name });
        this.connected.push({
          prefix: prefixOf(address, a.prefixLength),
          dev: iface.name,
          src: address,
        });
        const broadcast = a.broadcast === undefined ? undefined : parseAddress(a.broadcast);
        if (broadcast !== undefined) this.broadcasts.push(broadcast);
      }
    }
    const routes = world.network.routes;
    if (routes !== undefined) {
      this.routes = { ipv4: [], ipv6: [] };
      for (const family of ['ipv4', 'ipv6'] as const) {
        for (const route of routes[family]) {
          const prefix = parsePrefix(route.dst);
          if (prefix !== undefined) this.routes[family].push({ route, prefix });
        }
      }
    }
    const bridges = new Map<string, DockerNetwork>();
    for (const network of world.inventory.networks) {
      if (network.bridge !== undefined) bridges.set(network.bridge, network);
    }
    this.bridges = bridges;
  }

  /** An address the host answers for itself (the local routing table). */
  isLocal(address: Address): boolean {
    const loopback = parsePrefix(LOOPBACK[address.family]);
    if (loopback !== undefined && contains(loopback, address)) return true;
    return this.locals.some(
      (l) => l.address.family === address.family && l.address.value === address.value,
    );
  }

  /** The interface holding a local address (`lo` for loopback). */
  localDevice(address: Address): string | undefined {
    const found = this.locals.find(
      (l) => l.address.family === address.family && l.address.value === address.value,
    );
    if (found !== undefined) return found.dev;
    return this.isLocal(address) ? 'lo' : undefined;
  }

  isBroadcast(address: Address): boolean {
    if (address.family !== 'ipv4') return false;
    if (address.value === 0xffffffffn || address.value === 0n) return true;
    return this.broadcasts.some((b) => b.value === address.value);
  }

  /** The main table's route for `address`: longest prefix, then lowest metric. */
  route(address: Address): RouteAnswer {
    if (this.routes === undefined) {
      // Not captured: the interfaces' own subnets are certain; anything else is not.
      const hit = this.longestConnected(address);
      if (hit !== undefined) {
        const route: HostRoute = {
          family: address.family,
          dst: formatPrefix(hit.prefix),
          type: 'unicast',
          dev: hit.dev,
          metric: 0,
        };
        return { kind: 'route', route, prefix: hit.prefix };
      }
      return {
        kind: 'unknown',
        why: "the host's routes were not captured (a snapshot without ip-route.json)",
      };
    }
    let best: { route: HostRoute; prefix: Prefix; length: number } | undefined;
    for (const candidate of this.routes[address.family]) {
      if (!contains(candidate.prefix, address)) continue;
      const length = prefixLength(candidate.prefix) ?? 0;
      if (
        best === undefined ||
        length > best.length ||
        (length === best.length && candidate.route.metric < best.route.metric)
      )
        best = { ...candidate, length };
    }
    return best === undefined
      ? { kind: 'none' }
      : { kind: 'route', route: best.route, prefix: best.prefix };
  }

  private longestConnected(address: Address): { prefix: Prefix; dev: string } | undefined {
    let best: { prefix: Prefix; dev: string; length: number } | undefined;
    for (const c of this.connected) {
      if (!contains(c.prefix, address)) continue;
      const length = prefixLength(c.prefix) ?? 0;
      if (best === undefined || length > best.length) best = { ...c, length };
    }
    return best;
  }

  /** Every address of `family` on `dev`. */
  addressesOn(dev: string, family: Family): Address[] {
    const iface = this.world.network.interfaces.find((i) => i.name === dev);
    return (iface?.addresses ?? [])
      .filter((a) => a.family === family)
      .map((a) => parseAddress(a.address))
      .filter((a): a is Address => a !== undefined);
  }

  /** The first address of `family` on `dev`, global scope first. */
  interfaceAddress(dev: string, family: Family): Address | undefined {
    const iface = this.world.network.interfaces.find((i) => i.name === dev);
    const candidates = (iface?.addresses ?? []).filter((a) => a.family === family);
    const chosen =
      candidates.find((a) => a.scope === undefined || a.scope === 'global') ?? candidates[0];
    return chosen === undefined ? undefined : parseAddress(chosen.address);
  }

  /** The source address the host picks to reach `dst` out of `dev`. */
  sourceFor(dst: Address, answer: RouteAnswer): Address | undefined {
    if (this.isLocal(dst)) return dst;
    if (answer.kind !== 'route') return undefined;
    const prefsrc =
      answer.route.prefsrc === undefined ? undefined : parseAddress(answer.route.prefsrc);
    if (prefsrc !== undefined) return prefsrc;
    return answer.route.dev === undefined
      ? undefined
      : this.interfaceAddress(answer.route.dev, dst.family);
  }

  /**
   * The host's own address a client would connect to: the address on the interface of the
   * default route, else the first global address not on a Docker bridge or loopback.
   */
  primaryAddress(family: Family): Address | undefined {
    const any = parseAddress(family === 'ipv4' ? '0.0.0.0' : '::');
    if (any !== undefined && this.routes !== undefined) {
      const answer = this.route(any);
      if (
        answer.kind === 'route' &&
        (prefixLength(answer.prefix) ?? 1) === 0 &&
        answer.route.dev !== undefined
      ) {
        const address = this.interfaceAddress(answer.route.dev, family);
        if (address !== undefined) return address;
      }
    }
    for (const iface of this.world.network.interfaces) {
      if (iface.name === 'lo' || this.bridges.has(iface.name)) continue;
      const global = iface.addresses.find(
        (a) => a.family === family && (a.scope === undefined || a.scope === 'global'),
      );
      if (global !== undefined) return parseAddress(global.address);
    }
    return undefined;
  }

  /** The container (and its network) that holds `address` on a Docker bridge. */
  containerAt(address: Address, bridge?: string): ContainerAddress | undefined {
    for (const container of this.world.inventory.containers) {
      if (container.state !== 'running') continue;
      for (const a of container.attachments) {
        const text = address.family === 'ipv4' ? a.ipv4 : a.ipv6;
        const mine = text === undefined ? undefined : parseAddress(text);
        if (mine === undefined || mine.value !== address.value) continue;
        const network = this.world.inventory.networks.find(
          (n) => n.id === a.networkId || n.name === a.network,
        );
        if (network === undefined) continue;
        if (bridge !== undefined && network.bridge !== bridge) continue;
        return { container, network, address: mine };
      }
    }
    return undefined;
  }

  /** A container's addresses of one family, one per network it is attached to. */
  containerAddresses(container: DockerContainer, family: Family): ContainerAddress[] {
    const out: ContainerAddress[] = [];
    for (const a of container.attachments) {
      const text = family === 'ipv4' ? a.ipv4 : a.ipv6;
      const address = text === undefined ? undefined : parseAddress(text);
      const network = this.world.inventory.networks.find(
        (n) => n.id === a.networkId || n.name === a.network,
      );
      if (address !== undefined && network !== undefined) out.push({ container, network, address });
    }
    return out;
  }

  /** The Docker network whose subnets hold `address`. */
  networkHolding(address: Address): DockerNetwork | undefined {
    return this.world.inventory.networks.find((n) =>
      n.subnets.some((s) => {
        const prefix = parsePrefix(s);
        return prefix !== undefined && contains(prefix, address);
      }),
    );
  }

  /**
   * A sysctl's value: `{ value: undefined }` when the host has no such key, `undefined` when
   * the sysctls were not captured.
   */
  sysctl(key: string): { readonly value: string | undefined } | undefined {
    const map = this.world.network.sysctl;
    return map === undefined ? undefined : { value: map.get(key) };
  }

  ipset(name: string): LiveIpset | undefined {
    return this.world.netfilter.ipsets.get(name);
  }

  /** A rule's structured form, parsed once. */
  parse(rule: LiveRule): ParsedRule | Error {
    let parsed = this.parsed.get(rule);
    if (parsed === undefined) {
      try {
        parsed = parseRuleSpec(rule.spec);
      } catch (error) {
        parsed = error instanceof Error ? error : new Error(String(error));
      }
      this.parsed.set(rule, parsed);
    }
    return parsed;
  }
}
