/**
 * Endpoints → concrete probes on one host: which address and interface a source sends from
 * (a class of sources stands for itself with one address per region the host's rules cut it
 * into), and which address a destination is reached at. Pure.
 */
import type { DockerContainer } from '../docker/model.js';
import type { Family } from '../policy/model.js';
import {
  addressOutside,
  BITS,
  covers,
  formatAddress,
  formatPrefix,
  hostPrefix,
  parseAddress,
  parsePrefix,
  sameAddress,
  type Address,
  type Prefix,
} from './address.js';
import { QuestionError, type SourceSpec, type TargetSpec } from './endpoints.js';
import { HostView } from './host-view.js';
import type { World } from './model.js';
import type { Start } from './path.js';
import { prefixesNamed } from './prefixes.js';

export interface From {
  readonly label: string;
  readonly start: Start | 'host';
  readonly address?: Address;
  /** When the source cannot send at all (no route back to it). */
  readonly blocked?: string;
  readonly unknown?: string;
}

export interface To {
  readonly address: Address;
  readonly label: string;
}

const SPECIAL: Readonly<Record<Family, readonly string[]>> = {
  ipv4: ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/3', '255.255.255.255/32'],
  ipv6: ['::/8', 'fe80::/10', 'fc00::/7', 'ff00::/8'],
};
const UNIVERSE: Readonly<Record<Family, string>> = { ipv4: '0.0.0.0/0', ipv6: '2000::/3' };
/** More representatives than this and a class is not summed up. */
const MAX_REPRESENTATIVES = 128;

/** A class of sources the evaluator cannot stand for with a few addresses. */
export class Undecided {
  constructor(readonly why: string) {}
}

/** One HostView per World: its parsed rules and indexes serve every question asked of it. */
const views = new WeakMap<World, HostView>();

function viewOf(world: World): HostView {
  let view = views.get(world);
  if (view === undefined) {
    view = new HostView(world);
    views.set(world, view);
  }
  return view;
}

const named = new WeakMap<HostView, Record<Family, Prefix[]>>();

export class Resolver {
  readonly view: HostView;

  constructor(world: World) {
    this.view = viewOf(world);
  }

  container(name: string): DockerContainer {
    const found = this.view.world.inventory.containers.find(
      (c) => c.name === name && c.state === 'running',
    );
    if (found === undefined) {
      const known = this.view.world.inventory.containers
        .filter((c) => c.state === 'running')
        .map((c) => c.name);
      throw new QuestionError(
        `no running container named "${name}"${known.length === 0 ? '' : ` (running: ${known.sort().join(', ')})`}`,
      );
    }
    return found;
  }

  /** Every prefix the ruleset, the sets, routes and subnets name, per family. */
  private prefixes(family: Family): Prefix[] {
    let all = named.get(this.view);
    if (all === undefined) {
      all = prefixesNamed(this.view);
      named.set(this.view, all);
    }
    return all[family];
  }

  fromAddress(address: Address, label: string): From {
    if (this.view.isLocal(address))
      return { label: `${label} (an address of this host)`, start: 'host', address };
    const route = this.view.route(address);
    if (route.kind === 'unknown') return { label, start: 'host', address, unknown: route.why };
    if (route.kind === 'none' || route.route.dev === undefined || route.route.type !== 'unicast')
      return {
        label,
        start: 'host',
        address,
        blocked: `the host has no route back to ${formatAddress(address)}`,
      };
    return {
      label: `${label} (on ${route.route.dev})`,
      start: { kind: 'wire', iif: route.route.dev },
      address,
    };
  }

  /** The host's own addresses, as single-address prefixes: not a client's to stand for. */
  private ownAddresses(family: Family): Prefix[] {
    const out: Prefix[] = [];
    for (const l of this.view.world.network.interfaces.flatMap((i) => i.addresses)) {
      const a = parseAddress(l.address);
      if (a !== undefined && a.family === family) out.push(hostPrefix(a));
    }
    return out;
  }

  /**
   * Addresses that stand for a block: one per region the ruleset's prefixes cut it into (the
   * host's own addresses excluded: the host is the source `host`).
   */
  representatives(block: Prefix): Address[] | undefined {
    const inside = this.prefixes(block.family).filter((p) => covers(block, p) && !covers(p, block));
    // Nor the block's first and last addresses (a network's own and its broadcast).
    const last = {
      family: block.family,
      value: block.network | (~block.mask & ((1n << BigInt(BITS[block.family])) - 1n)),
    };
    const own = [
      ...this.ownAddresses(block.family),
      hostPrefix({ family: block.family, value: block.network }),
      hostPrefix(last),
    ];
    const out: Address[] = [];
    const add = (a: Address | undefined): void => {
      if (a !== undefined && !out.some((b) => sameAddress(a, b))) out.push(a);
    };
    add(addressOutside(block, [...inside, ...own]));
    for (const p of inside) {
      add(addressOutside(p, [...inside.filter((q) => covers(p, q) && !covers(q, p)), ...own]));
      if (out.length > MAX_REPRESENTATIVES) return undefined;
    }
    return out.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  }

  /** An address no rule, set, route or subnet names: a stranger on the internet. */
  stranger(family: Family): Address | undefined {
    // A default route (or any /0) names every address; it does not set anyone apart.
    const named = this.prefixes(family).filter((p) => p.mask !== 0n);
    const avoid = [
      ...named,
      ...SPECIAL[family].map((p) => parsePrefix(p) as Prefix),
      ...this.ownAddresses(family),
    ];
    return addressOutside(parsePrefix(UNIVERSE[family]) as Prefix, avoid);
  }

  /** The probes' origins; a string says why none can send (blocked), Undecided why none is known. */
  sources(source: SourceSpec, family: Family): From[] | string | Undecided {
    switch (source.kind) {
      case 'host':
        return [{ label: 'the host', start: 'host' }];
      case 'address':
        if (source.address.family !== family)
          return `${formatAddress(source.address)} is not ${family}`;
        return [this.fromAddress(source.address, formatAddress(source.address))];
      case 'cidr': {
        if (source.prefix.family !== family)
          return `${formatPrefix(source.prefix)} is not ${family}`;
        const reps = this.representatives(source.prefix);
        if (reps === undefined)
          return new Undecided(
            `${formatPrefix(source.prefix)} is cut into more than ${MAX_REPRESENTATIVES} regions by the ruleset; ask for smaller blocks`,
          );
        return reps.map((a) =>
          this.fromAddress(a, `${formatAddress(a)} (for ${formatPrefix(source.prefix)})`),
        );
      }
      case 'anyone': {
        const a = this.stranger(family);
        if (a === undefined)
          return new Undecided(
            `every ${family} address is named by some rule; ask for a block instead`,
          );
        return [this.fromAddress(a, `anyone (e.g. ${formatAddress(a)}, which no rule names)`)];
      }
      case 'container': {
        const container = this.container(source.name);
        const attached = this.view.containerAddresses(container, family);
        if (attached.length === 0) return `container ${source.name} has no ${family} address`;
        return attached.flatMap((c): From[] =>
          c.network.bridge === undefined
            ? []
            : [
                {
                  label: `container ${source.name} (${formatAddress(c.address)} on ${c.network.name})`,
                  start: { kind: 'wire', iif: c.network.bridge },
                  address: c.address,
                },
              ],
        );
      }
    }
  }

  /** The host address a source connects to for a port published on all addresses. */
  hostAddressFor(from: From, family: Family): Address | undefined {
    if (
      from.start !== 'host' &&
      from.start.kind === 'wire' &&
      !this.view.bridges.has(from.start.iif)
    ) {
      const onIif = this.view.interfaceAddress(from.start.iif, family);
      if (onIif !== undefined) return onIif;
    }
    return this.view.primaryAddress(family);
  }

  targets(target: TargetSpec, family: Family, from: From, notes: string[]): To[] | string {
    if (target.kind === 'address') {
      if (target.address.family !== family)
        return `${formatAddress(target.address)} is not ${family}`;
      return [{ address: target.address, label: '' }];
    }
    const container = this.container(target.name);
    const published = container.ports.filter(
      (p) => p.hostPort === target.port && p.protocol === target.protocol,
    );
    if (published.length === 0) {
      addNote(
        notes,
        `${container.name} publishes no ${target.port}/${target.protocol}: probing the container's own address`,
      );
      const own = this.view.containerAddresses(container, family);
      if (own.length === 0) return `container ${container.name} has no ${family} address`;
      return own.map((c) => ({
        address: c.address,
        label: `container ${container.name}`,
      }));
    }
    addNote(
      notes,
      `${container.name} publishes ${target.port}/${target.protocol} on ${published.map((p) => (p.hostIp === '' ? '*' : p.hostIp)).join(' and ')} (container port ${published[0]?.containerPort ?? '?'})`,
    );
    const out: To[] = [];
    for (const p of published) {
      const specific = parseAddress(p.hostIp);
      if (specific !== undefined && !isWildcard(specific)) {
        if (specific.family === family) out.push({ address: specific, label: 'the host' });
        continue;
      }
      if (specific !== undefined && specific.family !== family) continue;
      const address = this.hostAddressFor(from, family);
      if (address !== undefined && !out.some((o) => sameAddress(o.address, address)))
        out.push({ address, label: 'the host' });
    }
    if (out.length > 0) return out;
    // Not published in this family: the host's address still answers (or refuses) for it.
    const address = this.hostAddressFor(from, family);
    if (address === undefined) return `the host has no ${family} address`;
    addNote(
      notes,
      `${container.name} does not publish ${target.port}/${target.protocol} over ${family}`,
    );
    return [{ address, label: 'the host' }];
  }
}

function isWildcard(address: Address): boolean {
  return address.value === 0n;
}

function addNote(notes: string[], note: string): void {
  if (!notes.includes(note)) notes.push(note);
}
