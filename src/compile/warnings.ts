/**
 * What the plan warns about: the likely mistakes (a container port where the host port belongs,
 * sources of one family only for a port published on both), and what holds only partly (ports
 * no rule names, gateway modes that open every port, the docker-proxy window, egress keyed on
 * addresses). Pure.
 */
import type { Family, PortRange } from '../policy/model.js';
import type { CompileContext } from './context.js';
import { describeListeners, portLabel, type Ingress } from './ingress.js';
import { originLabel } from './origin.js';
import { isLoopback, type RawPublication } from './publications.js';
import type { SourceSet } from './segments.js';

function covers(range: PortRange, p: RawPublication): boolean {
  return range.protocol === p.protocol && range.first <= p.port && p.port <= range.last;
}

function pubLabel(p: RawPublication): string {
  return `${p.container.name} ${p.port}/${p.protocol}`;
}

/** A rule naming a port none of its containers publishes: say which port was likely meant. */
function unpublishedPorts(context: CompileContext): void {
  for (const group of context.policy.containers) {
    const members = context.groupMembers(group.name);
    if (members.length === 0) continue;
    const own = members.flatMap((c) => context.publicationsOf(c));
    group.ingress.forEach((rule, index) => {
      if (rule.ports === 'all') return;
      for (const range of rule.ports) {
        if (own.some((p) => covers(range, p))) continue;
        const meant = own.filter(
          (p) =>
            p.via === 'dnat' &&
            p.protocol === range.protocol &&
            range.first <= p.containerPort &&
            p.containerPort <= range.last,
        );
        const where = `containers.${group.name}.ingress[${index}]`;
        if (meant.length > 0) {
          const hostPorts = [...new Set(meant.map((p) => `${p.port}/${p.protocol}`))];
          context.warn(
            'container-port-named',
            `${where} names ${portLabel(range)}, the container port that Docker publishes on host port ${hostPorts.join(', ')} (${meant.map((p) => p.container.name).join(', ')}); rules name the host port a client connects to. Did you mean ${hostPorts.join(', ')}? As written, ${hostPorts.join(', ')} is not covered by this rule`,
          );
        } else {
          context.warn(
            'port-not-published',
            `${where} names ${portLabel(range)}, which none of group "${group.name}"'s containers publishes; the rule holds the port should one publish it`,
          );
        }
      }
    });
  }
}

function familiesOf(set: SourceSet, context: CompileContext): Set<Family> {
  const out = new Set<Family>();
  for (const c of set.cidrs) out.add(c.family);
  for (const key of set.ipsets) {
    const s = context.policy.ipsets.get(key);
    if (s?.kind === 'managed') out.add(s.family);
    else if (s !== undefined) {
      const family = context.facts.ipsetFamilies.get(s.kernelName);
      if (family !== undefined) out.add(family);
    }
  }
  if (set.groups.length > 0) {
    out.add('ipv4');
    out.add('ipv6');
  }
  return out;
}

function publishedFamilies(p: RawPublication): Set<Family> {
  const out = new Set<Family>();
  for (const ip of p.hostIps) {
    if (ip === '0.0.0.0' || (!ip.includes(':') && !isLoopback(ip))) out.add('ipv4');
    if (ip === '::' || (ip.includes(':') && !isLoopback(ip))) out.add('ipv6');
  }
  return out;
}

/** Sources of one family only, for a port published on both: the other family is refused. */
function oneFamilySources(context: CompileContext, ingress: Ingress): void {
  for (const p of context.publications) {
    if (p.via !== 'dnat') continue;
    const { sources } = ingress.reachOf(p);
    if (sources.anyone) continue;
    const allowed = familiesOf(sources, context);
    if (allowed.size !== 1) continue;
    const [only] = allowed;
    const other: Family = only === 'ipv4' ? 'ipv6' : 'ipv4';
    if (!publishedFamilies(p).has(other)) continue;
    const names = [...sources.cidrs.map((c) => c.cidr), ...sources.ipsets.map((k) => `ipset:${k}`)];
    context.warn(
      'one-family-sources',
      `${pubLabel(p)}: every source is ${only === 'ipv4' ? 'IPv4' : 'IPv6'} (${names.join(', ')}), so ${other === 'ipv4' ? 'IPv4' : 'IPv6'} clients other than the host are refused, while Docker publishes the port on ${other === 'ipv4' ? '0.0.0.0' : '::'} too`,
    );
  }
}

function anyBesideOthers(context: CompileContext): void {
  for (const group of context.policy.containers) {
    group.ingress.forEach((rule, index) => {
      if (rule.from.some((s) => s.kind === 'any') && rule.from.length > 1)
        context.warn(
          'any-beside-others',
          `${originLabel({ path: ['containers', group.name, 'ingress', index] })} lists \`any\` beside other sources: anyone may connect, the others change nothing`,
        );
    });
  }
}

/** Published ports the defaults leave open, and networks that open every port. */
function openByDefault(context: CompileContext, ingress: Ingress): void {
  if (context.policy.defaults.ingress === 'host') return;
  const owners = new Map<string, string[]>();
  for (const p of context.publications) {
    if (p.via === 'dnat' && p.hostIps.every(isLoopback)) continue;
    if (ingress.reachOf(p).origins.some((o) => o.path[0] === 'containers')) continue;
    const label = `${p.port}/${p.protocol}${p.via === 'routed' ? ' (routed)' : ''}`;
    owners.set(label, [...(owners.get(label) ?? []), p.container.name]);
  }
  for (const [label, names] of owners)
    context.warn(
      'uncovered-port',
      `${[...new Set(names)].join(', ')} publishes ${label}, which no rule names: reachable from anyone (defaults.ingress: allow)`,
      'note',
    );
  for (const network of context.inventory.networks) {
    for (const family of ['ipv4', 'ipv6'] as const) {
      if (network.gatewayMode[family] !== 'nat-unprotected') continue;
      if (family === 'ipv6' && !network.ipv6) continue;
      context.warn(
        'nat-unprotected',
        `network "${network.name}" is nat-unprotected over ${family === 'ipv4' ? 'IPv4' : 'IPv6'}: every port of its containers is reachable at their own addresses by any host that routes to ${network.subnets.join(', ') || 'its subnet'}; rules cover the published ones. Set defaults.ingress: host to close the rest`,
      );
    }
  }
}

/** `defaults.ingress: host` through docker-proxy: keyed on ports, so new ones wait for moat. */
function proxyWindow(context: CompileContext, ingress: Ingress): void {
  if (context.policy.defaults.ingress !== 'host') return;
  const listeners = context.facts.listeners;
  const published = context.publications.filter((p) => p.via === 'dnat');
  const proxyOff =
    listeners !== undefined &&
    published.length > 0 &&
    !listeners.some((l) => l.owners.some((o) => o.command === 'docker-proxy'));
  if (!proxyOff)
    context.warn(
      'proxy-window',
      'defaults.ingress: host holds every port Docker DNATs from its first packet, ports published later included; through docker-proxy (an IPv6 client of an IPv4-only container) a port published after this run is open until moat applies again (moat watch: within a second). Set "userland-proxy": false in /etc/docker/daemon.json to close that path',
    );
  for (const port of ingress.unnamedPublishedPorts()) {
    const foreign = ingress.foreignListeners(port);
    if (foreign.length > 0)
      context.warn(
        'host-service-on-published-port',
        `${portLabel(port)} is published by Docker and ${describeListeners(foreign)} listens on it too; defaults.ingress: host restricts it on the DNAT path only, not in INPUT`,
      );
  }
}

/**
 * A group's own egress section is keyed on its containers' addresses (the only handle on one
 * container among many on a bridge). Under `defaults.egress: allow`, a container of the group
 * started or recreated after this run is not held by it until moat applies again.
 */
function egressWindow(context: CompileContext): void {
  if (context.policy.defaults.egress !== 'allow') return;
  const restricting = context.policy.containers.filter(
    (g) => g.egress !== undefined && (g.egress.default === 'deny' || g.egress.deny.length > 0),
  );
  if (restricting.length === 0) return;
  const names = restricting.map((g) => `"${g.name}"`).join(', ');
  context.warn(
    'egress-window',
    `the egress section${restricting.length > 1 ? 's' : ''} of ${names} ${restricting.length > 1 ? 'are' : 'is'} keyed on container addresses: a container started or recreated after this run may send anything (defaults.egress: allow) until moat applies again (moat watch: at its start event, within a second). Set defaults.egress: deny to hold such a container closed meanwhile`,
    'note',
  );
}

/** What moat cannot check or close on this host, said before it matters. */
function hostLimits(context: CompileContext): void {
  if (context.facts.ipv6Dnat || context.policy.defaults.ingress === 'host') return;
  for (const network of context.inventory.networks) {
    if (!network.ipv6) continue;
    context.warn(
      'ipv6-unfiltered',
      `network "${network.name}" has IPv6 but Docker writes no ip6tables rules (a daemon before 27, or "ip6tables": false): every port of its containers is reachable at their IPv6 addresses by any host that routes to ${network.subnets.filter((s) => s.includes(':')).join(', ') || 'its subnet'}; rules cover the published ones. Set defaults.ingress: host to close the rest`,
    );
  }
}

export function compileWarnings(context: CompileContext, ingress: Ingress): void {
  hostLimits(context);
  unpublishedPorts(context);
  oneFamilySources(context, ingress);
  anyBesideOthers(context);
  openByDefault(context, ingress);
  proxyWindow(context, ingress);
  egressWindow(context);
}
