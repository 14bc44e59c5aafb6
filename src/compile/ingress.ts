/**
 * Ingress: who may open a connection to a published port. Every rule naming a port, in any
 * group, adds its sources (segments.ts); ports no rule names follow `defaults.ingress`. This
 * module says, per port and path, which sources are admitted; compile.ts turns that into chains.
 *
 * Paths a connection can take to a container port:
 *   dnat    a published host port, DNATed by Docker (keyed on the host port, which never moves)
 *   proxy   the same host port, accepted by docker-proxy on the host (INPUT)
 *   direct  the container's own address: `routed` networks, and `nat`/`nat-unprotected` ones
 *           where Docker lets a routed client through (keyed on the bridge and container port)
 * Pure.
 */
import { UserError } from '../core/errors.js';
import type { Family, IngressRule, Policy, PortRange, Protocol } from '../policy/model.js';
import type { CompileContext } from './context.js';
import { DOCKER_PORT_HOLDERS, type Listener } from './host-facts.js';
import type { Publication, RuleOrigin } from './model.js';
import { originLabel } from './origin.js';
import { isLoopback, pathsOf, type RawPublication } from './publications.js';
import {
  ANYONE,
  HOST_ONLY,
  segmentAt,
  segmentsOf,
  sourceSetKey,
  unionOf,
  type PortClaim,
  type PortSegment,
  type SourceSet,
} from './segments.js';

export const DEFAULTS_INGRESS: RuleOrigin = { path: ['defaults', 'ingress'] };

export function portLabel(port: { protocol: string; first: number; last: number }): string {
  const range = port.first === port.last ? `${port.first}` : `${port.first}-${port.last}`;
  return `${range}/${port.protocol}`;
}

export function portMatch(port: { first: number; last: number }): string {
  return port.first === port.last ? `${port.first}` : `${port.first}:${port.last}`;
}

/** The ports the policy's ingress rules name explicitly (`all` names what Docker publishes). */
export function portsNamedBy(policy: Policy): PortRange[] {
  return policy.containers.flatMap((g) =>
    g.ingress.flatMap((r) => (r.ports === 'all' ? [] : [...r.ports])),
  );
}

function covers(range: PortRange, protocol: string, port: number): boolean {
  return range.protocol === protocol && range.first <= port && port <= range.last;
}

function ruleOrigin(group: string, index: number): RuleOrigin {
  return { path: ['containers', group, 'ingress', index] };
}

/** A port range some rule names, with the sources allowed there: one rule in one chain. */
export interface DirectEntry {
  readonly bridge: string;
  readonly protocol: Protocol;
  readonly containerPort: number;
  /** Absent: every container on the bridge shares these sources for this port. */
  readonly address?: string;
  readonly sources: SourceSet;
  readonly origins: readonly RuleOrigin[];
}

interface GroupRule {
  readonly group: string;
  readonly rule: IngressRule;
  readonly origin: RuleOrigin;
}

export class Ingress {
  /** Segments of the host-port space that some rule names (DNAT and proxy paths). */
  readonly segments: readonly PortSegment[];
  readonly defaultSources: SourceSet;
  private readonly rules: readonly GroupRule[];

  constructor(private readonly context: CompileContext) {
    this.rules = context.policy.containers.flatMap((g) =>
      g.ingress.map((rule, i) => ({ group: g.name, rule, origin: ruleOrigin(g.name, i) })),
    );
    this.segments = segmentsOf(this.rules.flatMap((r) => this.claims(r)));
    this.defaultSources = context.policy.defaults.ingress === 'host' ? HOST_ONLY : ANYONE;
  }

  /** The host ports a rule names: its list, or for `all` what its containers publish. */
  private claims({ group, rule, origin }: GroupRule): PortClaim[] {
    const ranges: PortRange[] =
      rule.ports === 'all'
        ? this.context
            .groupMembers(group)
            .flatMap((c) => this.context.publicationsOf(c))
            .filter((p) => p.via === 'dnat')
            .map((p) => ({ protocol: p.protocol, first: p.port, last: p.port }))
        : [...rule.ports];
    return ranges.map((range) => ({ range, sources: rule.from, origin }));
  }

  /** Rules of the container's groups naming a routed publication's (container) port. */
  private routedRules(p: RawPublication): GroupRule[] {
    return this.rules.filter(
      ({ group, rule }) =>
        this.context.inGroup(group, p.container) &&
        (rule.ports === 'all' || rule.ports.some((r) => covers(r, p.protocol, p.port))),
    );
  }

  /**
   * On a routed network the rules name container ports, and Docker 29 does not list a routed
   * binding in its container list: each single port a rule of the container's groups names is
   * held at its address whether or not the list shows it.
   */
  private namedRoutedPorts(
    container: RawPublication['container'],
    listed: readonly RawPublication[],
  ): RawPublication[] {
    const out = new Map<string, RawPublication>();
    for (const { group, rule } of this.rules) {
      if (rule.ports === 'all' || !this.context.inGroup(group, container)) continue;
      for (const r of rule.ports) {
        if (r.first !== r.last) continue;
        const key = `${r.protocol}/${r.first}`;
        if (listed.some((p) => `${p.protocol}/${p.port}` === key)) continue;
        out.set(key, {
          container,
          protocol: r.protocol,
          via: 'routed',
          port: r.first,
          containerPort: r.first,
          hostIps: [],
        });
      }
    }
    return [...out.values()];
  }

  /** Who may reach a publication, and the rules that say so. */
  reachOf(p: RawPublication): { sources: SourceSet; origins: RuleOrigin[] } {
    if (p.via === 'dnat') {
      const segment = segmentAt(this.segments, p.protocol, p.port);
      return segment === undefined
        ? { sources: this.defaultSources, origins: [DEFAULTS_INGRESS] }
        : { sources: segment.sources, origins: [...segment.origins] };
    }
    const rules = this.routedRules(p);
    return rules.length === 0
      ? { sources: this.defaultSources, origins: [DEFAULTS_INGRESS] }
      : { sources: unionOf(rules.map((r) => r.rule.from)), origins: rules.map((r) => r.origin) };
  }

  /**
   * Who may reach a publication at the container's own address. A port Docker publishes on
   * loopback only is the host's: before Docker 28 its ACCEPT for the container's address also
   * lets in any host that routes to the subnet, so that path is held to the host too.
   */
  private directReachOf(p: RawPublication): { sources: SourceSet; origins: RuleOrigin[] } {
    if (p.via === 'dnat' && p.hostIps.length > 0 && p.hostIps.every(isLoopback))
      return { sources: HOST_ONLY, origins: [DEFAULTS_INGRESS] };
    return this.reachOf(p);
  }

  publications(): Publication[] {
    return this.context.publications.map((p) => {
      const { origins } = this.reachOf(p);
      return {
        container: p.container.name,
        groups: this.context.groupsOf(p.container),
        protocol: p.protocol,
        via: p.via,
        port: p.port,
        containerPort: p.containerPort,
        ...(p.via === 'dnat' ? { hostIps: p.hostIps } : {}),
        paths: pathsOf(p, this.context.members, this.context.facts.ipv6Dnat),
        origins: origins.filter((o) => o !== DEFAULTS_INGRESS),
      };
    });
  }

  /**
   * Rules for the direct path: per bridge and container port, the sources of the containers
   * Docker lets a routed client reach there. One rule per bridge and port when every such
   * container agrees (so a container that restarts with a new address stays covered), one per
   * address otherwise. Ports whose sources equal the default need no rule.
   */
  directEntries(family: Family): DirectEntry[] {
    interface Target {
      address: string;
      sources: SourceSet;
      origins: RuleOrigin[];
    }
    const byPort = new Map<
      string,
      { bridge: string; protocol: Protocol; port: number; targets: Target[] }
    >();
    const bystanders = new Map<string, string[]>(); // bridge → addresses of nat-mode members
    for (const m of this.context.members) {
      const address = m.addresses[family];
      const mode = m.network.gatewayMode[family];
      if (address === undefined || mode === 'isolated') continue;
      if (mode !== 'routed')
        bystanders.set(m.bridge, [...(bystanders.get(m.bridge) ?? []), address]);
      const own = this.context
        .publicationsOf(m.container)
        .filter((p) => (p.via === 'routed') === (mode === 'routed'));
      if (mode === 'routed') own.push(...this.namedRoutedPorts(m.container, own));
      for (const p of own) {
        const key = `${m.bridge}|${p.protocol}|${p.containerPort}`;
        const entry = byPort.get(key) ?? {
          bridge: m.bridge,
          protocol: p.protocol,
          port: p.containerPort,
          targets: [],
        };
        entry.targets.push({ address, ...this.directReachOf(p) });
        byPort.set(key, entry);
      }
    }
    const out: DirectEntry[] = [];
    const defaultKey = sourceSetKey(this.defaultSources);
    for (const { bridge, protocol, port, targets } of byPort.values()) {
      const keys = new Set(targets.map((t) => sourceSetKey(t.sources)));
      const first = targets[0];
      if (first === undefined) continue;
      const others = (bystanders.get(bridge) ?? []).filter(
        (a) => !targets.some((t) => t.address === a),
      );
      const shared = keys.size === 1 && (others.length === 0 || keys.has(defaultKey));
      if (shared) {
        if (!keys.has(defaultKey))
          out.push({
            bridge,
            protocol,
            containerPort: port,
            sources: first.sources,
            origins: mergeOrigins(targets),
          });
        continue;
      }
      for (const t of targets) {
        if (sourceSetKey(t.sources) === defaultKey) continue;
        out.push({
          bridge,
          protocol,
          containerPort: port,
          address: t.address,
          sources: t.sources,
          origins: t.origins,
        });
      }
    }
    return out.sort((a, b) => directOrder(a).localeCompare(directOrder(b)));
  }

  /** DNATed host ports no rule names: under `defaults.ingress: host`, the proxy path needs them. */
  unnamedPublishedPorts(): PortRange[] {
    const out = new Map<string, PortRange>();
    for (const p of this.context.publications) {
      if (p.via !== 'dnat' || p.hostIps.every(isLoopback)) continue;
      if (segmentAt(this.segments, p.protocol, p.port) !== undefined) continue;
      out.set(`${p.protocol}/${p.port}`, { protocol: p.protocol, first: p.port, last: p.port });
    }
    return [...out.values()].sort(
      (a, b) => a.protocol.localeCompare(b.protocol) || a.first - b.first,
    );
  }

  /**
   * Host programs (not Docker's) listening on a port range: restricting the range in INPUT
   * would restrict them. A socket on a port Docker publishes, at the address it publishes on,
   * is Docker's (its proxy, or the daemon holding the port); others are foreign unless their
   * owners are known to be Docker's. None when the host's sockets were not read.
   */
  foreignListeners(range: PortRange): Listener[] {
    return (this.context.facts.listeners ?? []).filter(
      (l) =>
        // moat's INPUT rules never match loopback (`! -i lo`): a 127.0.0.53:53 resolver is safe.
        !isLoopback(l.address) &&
        covers(range, l.protocol, l.port) &&
        !this.publishedBy(l) &&
        (l.owners.length === 0 || l.owners.some((o) => !DOCKER_PORT_HOLDERS.includes(o.command))),
    );
  }

  private publishedBy(l: Listener): boolean {
    const wildcard = l.address === '0.0.0.0' || l.address === '::';
    return this.context.publications.some(
      (p) =>
        p.via === 'dnat' &&
        p.protocol === l.protocol &&
        p.port === l.port &&
        (p.hostIps.includes(l.address) ||
          (wildcard && p.hostIps.some((ip) => ip === '0.0.0.0' || ip === '::'))),
    );
  }

  /** Refuses a named port where a host service listens, unless a rule says it is deliberate. */
  checkHostServices(): void {
    const problems: string[] = [];
    for (const segment of this.segments) {
      if (segment.sources.anyone) continue;
      const listeners = this.foreignListeners(segment);
      if (listeners.length === 0) continue;
      const deliberate = this.rules.some(
        (r) =>
          r.rule.restrictHostServices === true &&
          segment.origins.some((o) => sameOrigin(o, r.origin)),
      );
      if (deliberate) continue;
      problems.push(
        `${portLabel(segment)} is where ${describeListeners(listeners)} listens on the host; ` +
          `${segment.origins.map(originLabel).join(' and ')} would restrict it to ${
            segment.sources.cidrs.length +
              segment.sources.ipsets.length +
              segment.sources.groups.length ===
            0
              ? 'the host itself'
              : 'its sources'
          } (rules name the host ports Docker publishes). Fix the port, or add ` +
          '`restrict_host_services: true` to the rule if restricting that service is meant',
      );
    }
    if (problems.length > 0)
      throw new UserError(
        `refusing to restrict a port a host service listens on:\n  ${problems.join('\n  ')}`,
        'host-service-port',
      );
  }
}

function sameOrigin(a: RuleOrigin, b: RuleOrigin): boolean {
  return JSON.stringify(a.path) === JSON.stringify(b.path);
}

function mergeOrigins(targets: readonly { origins: readonly RuleOrigin[] }[]): RuleOrigin[] {
  const seen = new Map<string, RuleOrigin>();
  for (const t of targets) for (const o of t.origins) seen.set(JSON.stringify(o.path), o);
  return [...seen.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, o]) => o);
}

function directOrder(e: DirectEntry): string {
  return `${e.bridge}|${e.protocol}|${String(e.containerPort).padStart(5, '0')}|${e.address ?? ''}`;
}

export function describeListeners(listeners: readonly Listener[]): string {
  const names = new Set<string>();
  for (const l of listeners) {
    const at = `${l.protocol} ${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}`;
    if (l.owners.length === 0) names.add(`an unknown program (${at})`);
    for (const o of l.owners) names.add(`${o.command} (pid ${o.pid}, ${at})`);
  }
  return [...names].join(', ');
}
