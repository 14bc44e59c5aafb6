/**
 * Questions in the user's words ("from 198.51.100.7", "from container:api", "to ghost:2368/tcp",
 * "from anyone") → concrete probes per family → verdicts. This is the evaluator's API: `moat
 * explain` and `moat test` use it, and so can `plan` ("for this published port and these
 * sources, what is the verdict before and after the plan": call `explain` on the World read
 * from the host and on `worldAfterPlan(...)`). Pure.
 */
import { UserError } from '../core/errors.js';
import type { DockerContainer } from '../docker/model.js';
import { FAMILIES, type Family } from '../policy/model.js';
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
import { explore } from './explore.js';
import { HostView } from './host-view.js';
import type {
  Explanation,
  FamilyAnswer,
  Probe,
  ProbeEnd,
  ProbeOutcome,
  Protocol,
  Summary,
  Unmodelled,
  World,
} from './model.js';
import { walkConnection, type ConnectionSpec, type Start } from './path.js';
import { prefixesNamed } from './prefixes.js';

export type SourceSpec =
  | { readonly kind: 'host' }
  | { readonly kind: 'anyone' }
  | { readonly kind: 'address'; readonly address: Address }
  | { readonly kind: 'cidr'; readonly prefix: Prefix }
  | { readonly kind: 'container'; readonly name: string };

export type TargetSpec =
  /** A container's published (host) port; its own port when it publishes none such. */
  | {
      readonly kind: 'container';
      readonly name: string;
      readonly port: number;
      readonly protocol: Protocol;
    }
  | {
      readonly kind: 'address';
      readonly address: Address;
      readonly port: number;
      readonly protocol: Protocol;
    };

export interface ExplainOptions {
  /** Only these families (default: every family the endpoints allow). */
  readonly families?: readonly Family[];
}

/** A question moat cannot ask of this host (an unknown container, a malformed endpoint). */
export class QuestionError extends UserError {
  constructor(message: string) {
    super(message, 'bad-question');
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** `host`, `anyone`, `container:NAME`, an address or a CIDR block. */
export function parseSource(text: string): SourceSpec {
  const t = text.trim();
  if (t === 'host') return { kind: 'host' };
  if (t === 'anyone' || t === 'any') return { kind: 'anyone' };
  if (t.startsWith('container:')) {
    const name = t.slice('container:'.length);
    if (!NAME.test(name)) throw new QuestionError(`"${text}": a container name after container:`);
    return { kind: 'container', name };
  }
  if (t.includes('/')) {
    const prefix = parsePrefix(t);
    if (prefix === undefined) throw new QuestionError(`"${text}" is not a CIDR block`);
    if (prefix.mask === hostPrefix({ family: prefix.family, value: 0n }).mask)
      return { kind: 'address', address: { family: prefix.family, value: prefix.network } };
    return { kind: 'cidr', prefix };
  }
  const address = parseAddress(t);
  if (address === undefined)
    throw new QuestionError(
      `"${text}" is not a source: use host, anyone, container:NAME, an address or a CIDR block`,
    );
  return { kind: 'address', address };
}

/** `NAME:PORT[/PROTO]`, `ADDRESS:PORT[/PROTO]`, `[IPV6]:PORT[/PROTO]`; the protocol defaults to tcp. */
export function parseTarget(text: string): TargetSpec {
  const m = /^(?:\[([^\]]+)\]|([^[\]]+)):(\d{1,5})(?:\/(tcp|udp))?$/.exec(text.trim());
  const bad = new QuestionError(
    `"${text}" is not a destination: use CONTAINER:PORT/PROTO, ADDRESS:PORT/PROTO or [IPV6]:PORT/PROTO`,
  );
  if (m === null) throw bad;
  const [, bracketed, plain, portText, protocolText] = m;
  const port = Number(portText);
  const protocol = (protocolText ?? 'tcp') as Protocol;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad;
  if (bracketed !== undefined) {
    const address = parseAddress(bracketed);
    if (address === undefined || address.family !== 'ipv6') throw bad;
    return { kind: 'address', address, port, protocol };
  }
  const host = plain ?? '';
  const address = parseAddress(host);
  if (address !== undefined) return { kind: 'address', address, port, protocol };
  if (!NAME.test(host)) throw bad;
  return { kind: 'container', name: host, port, protocol };
}

export function describeSource(source: SourceSpec): string {
  switch (source.kind) {
    case 'host':
    case 'anyone':
      return source.kind;
    case 'address':
      return formatAddress(source.address);
    case 'cidr':
      return formatPrefix(source.prefix);
    case 'container':
      return `container:${source.name}`;
  }
}

export function describeTarget(target: TargetSpec): string {
  const host =
    target.kind === 'container'
      ? target.name
      : target.address.family === 'ipv6'
        ? `[${formatAddress(target.address)}]`
        : formatAddress(target.address);
  return `${host}:${target.port}/${target.protocol}`;
}

// --- endpoints -------------------------------------------------------------------------------

interface From {
  readonly label: string;
  readonly start: Start | 'host';
  readonly address?: Address;
  /** When the source cannot send at all (no route back to it). */
  readonly blocked?: string;
  readonly unknown?: string;
}

interface To {
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
class Undecided {
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

class Resolver {
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

// --- walking and summing up -------------------------------------------------------------------

function dedupe(items: readonly Unmodelled[]): Unmodelled[] {
  const seen = new Set<string>();
  return items.filter((u) => {
    const key = `${u.rule?.family ?? ''} ${u.rule?.table ?? ''} ${u.rule?.chain ?? ''} ${u.rule?.position ?? ''} ${u.why}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Walks one connection every way the unmodelled matches allow, and sums the walks up. */
export function decide(view: HostView, spec: ConnectionSpec): ProbeOutcome {
  const explored = explore((decider) => walkConnection(view, spec, decider));
  const first = explored.results[0];
  if (first === undefined || explored.truncated) {
    return {
      verdict: 'unknown',
      reason: 'too many rules whose matches are not modelled lie on the path',
      trail: first?.trail ?? [],
      unmodelled: dedupe(explored.results.flatMap((r) => r.assumed)),
    };
  }
  const assumed = dedupe(explored.results.flatMap((r) => r.assumed));
  const unknown = explored.results.find((r) => r.verdict === 'unknown');
  if (unknown !== undefined) {
    return {
      verdict: 'unknown',
      reason: unknown.reason,
      trail: unknown.trail,
      unmodelled: dedupe([...(unknown.unknown === undefined ? [] : [unknown.unknown]), ...assumed]),
    };
  }
  if (explored.results.every((r) => r.verdict === first.verdict)) {
    return {
      verdict: first.verdict,
      reason: first.reason,
      trail: first.trail,
      unmodelled: assumed,
    };
  }
  const other = explored.results.find((r) => r.verdict !== first.verdict);
  return {
    verdict: 'unknown',
    reason: `depends on matches the evaluator does not model: ${first.verdict} if they match as first assumed (${first.reason}), ${other?.verdict ?? '?'} otherwise (${other?.reason ?? '?'})`,
    trail: first.trail,
    unmodelled: assumed,
  };
}

/** Facts about the host that make any verdict from its iptables rules alone uncertain. */
export function worldCaveats(world: World): string[] {
  const out: string[] = [];
  const network = world.network;
  if (network.firewallBackend === 'nftables')
    out.push(
      'Docker runs its nftables firewall backend: its rules live in the nft tables `ip docker-bridges` and `ip6 docker-bridges`, which iptables-save does not show and moat does not model',
    );
  const foreign = (network.nftTables ?? []).filter((t) => !IPTABLES_NFT_TABLES.has(t));
  if (foreign.length > 0)
    out.push(
      `nftables tables that iptables does not show also filter packets: ${foreign.join(', ')} (not modelled)`,
    );
  for (const family of FAMILIES) {
    const legacy = world.saveWarnings?.[family].find((w) => w.includes('legacy tables present'));
    if (legacy !== undefined)
      out.push(
        `${family}: the host also holds iptables-legacy tables, which apply too and were not read`,
      );
  }
  if ((network.extraRoutingRules ?? []).length > 0)
    out.push(
      `policy routing (ip rule) is not modelled: ${(network.extraRoutingRules ?? []).join('; ')}`,
    );
  return out;
}

/** The tables iptables-nft and ebtables-nft make, which iptables-save shows (or are not IP). */
const IPTABLES_NFT_TABLES = new Set(
  ['filter', 'nat', 'mangle', 'raw', 'security']
    .flatMap((t) => [`ip ${t}`, `ip6 ${t}`])
    .concat(['arp filter', 'bridge filter', 'bridge nat', 'bridge broute']),
);

function summarise(probes: readonly Probe[]): Summary {
  const verdicts = new Set(probes.map((p) => p.outcome.verdict));
  if (verdicts.has('unknown')) return 'unknown';
  if (verdicts.size === 1) return probes[0]?.outcome.verdict ?? 'unknown';
  return 'partly';
}

function applyCaveats(outcome: ProbeOutcome, caveats: readonly string[]): ProbeOutcome {
  if (caveats.length === 0 || outcome.verdict === 'unknown') return outcome;
  return {
    ...outcome,
    verdict: 'unknown',
    reason: `iptables alone: ${outcome.verdict} (${outcome.reason}); but ${caveats[0] ?? ''}`,
    unmodelled: [...caveats.map((why) => ({ why })), ...outcome.unmodelled],
  };
}

function familiesOf(source: SourceSpec, target: TargetSpec, options: ExplainOptions): Family[] {
  const fixed =
    source.kind === 'address'
      ? source.address.family
      : source.kind === 'cidr'
        ? source.prefix.family
        : target.kind === 'address'
          ? target.address.family
          : undefined;
  const families = fixed === undefined ? [...FAMILIES] : [fixed];
  return options.families === undefined
    ? families
    : families.filter((f) => options.families?.includes(f));
}

function probe(
  resolver: Resolver,
  from: From,
  to: To,
  target: TargetSpec,
  family: Family,
  caveats: readonly string[],
): Probe {
  const view = resolver.view;
  const fromEnd: ProbeEnd = {
    address: from.address === undefined ? '' : formatAddress(from.address),
    label: from.label,
  };
  const toEnd: ProbeEnd = {
    address: formatAddress(to.address),
    port: target.port,
    label: to.label,
  };
  const base = { family, protocol: target.protocol, from: fromEnd, to: toEnd };
  if (from.blocked !== undefined)
    return {
      ...base,
      outcome: { verdict: 'blocked', reason: from.blocked, trail: [], unmodelled: [] },
    };
  if (from.unknown !== undefined)
    return {
      ...base,
      outcome: {
        verdict: 'unknown',
        reason: from.unknown,
        trail: [],
        unmodelled: [{ why: from.unknown }],
      },
    };
  let start: Start;
  let src: Address | undefined = from.address;
  if (from.start === 'host') {
    start = { kind: 'local' };
    src ??= view.sourceFor(to.address, view.route(to.address));
    if (src === undefined)
      return {
        ...base,
        outcome: {
          verdict: 'blocked',
          reason: `the host has no route to ${formatAddress(to.address)}`,
          trail: [],
          unmodelled: [],
        },
      };
  } else {
    start = from.start;
    // A container to a neighbour on its own bridge: switched, not routed.
    if (start.kind === 'wire' && view.bridges.has(start.iif) && !view.isLocal(to.address)) {
      const route = view.route(to.address);
      if (route.kind === 'route' && route.route.dev === start.iif)
        start = { ...start, bridged: true };
    }
  }
  if (src === undefined) throw new Error('a probe without a source address');
  const spec: ConnectionSpec = {
    family,
    protocol: target.protocol,
    src,
    dst: to.address,
    dport: target.port,
    start,
  };
  return {
    ...base,
    from: { ...fromEnd, address: formatAddress(src) },
    outcome: applyCaveats(decide(view, spec), caveats),
  };
}

/** Can `source` open a connection to `target`, per family, and why. */
export function explain(
  world: World,
  source: SourceSpec,
  target: TargetSpec,
  options: ExplainOptions = {},
): Explanation {
  const resolver = new Resolver(world);
  const caveats = worldCaveats(world);
  const notes: string[] = [];
  const answers: FamilyAnswer[] = [];
  if (target.kind === 'container') resolver.container(target.name);
  if (source.kind === 'container') resolver.container(source.name);
  for (const family of familiesOf(source, target, options)) {
    const sources = resolver.sources(source, family);
    if (typeof sources === 'string' || sources instanceof Undecided) {
      const blocked = typeof sources === 'string';
      answers.push({
        family,
        verdict: blocked ? 'blocked' : 'unknown',
        probes: [],
        note: blocked ? sources : sources.why,
      });
      continue;
    }
    const probes: Probe[] = [];
    let note: string | undefined;
    for (const from of sources) {
      const targets = resolver.targets(target, family, from, notes);
      if (typeof targets === 'string') {
        note = targets;
        continue;
      }
      for (const to of targets) probes.push(probe(resolver, from, to, target, family, caveats));
    }
    answers.push({
      family,
      verdict: probes.length === 0 ? 'blocked' : summarise(probes),
      probes,
      ...(note === undefined || probes.length > 0 ? {} : { note }),
    });
  }
  return {
    from: describeSource(source),
    to: describeTarget(target),
    notes: [...notes, ...caveats],
    answers,
  };
}
