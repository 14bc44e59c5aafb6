/**
 * Compile: policy + Docker inventory (+ the few facts of the live host it needs) → the chains,
 * jumps and ipsets moat wants. Pure and deterministic.
 *
 * The layout, per family, in the filter table:
 *   DOCKER-USER (or FORWARD) → MOAT-FORWARD   routed traffic, after Docker's DNAT
 *   INPUT                    → MOAT-INPUT     traffic to the host itself (docker-proxy path)
 *   MOAT-SRC-<hash>   allowed sources of one or more published ports; RETURN or DROP
 *   MOAT-EGR-<hash>   one container group's egress: deny list, allow list, default
 * moat only ever RETURNs (hand the packet back to Docker's and the user's rules) or DROPs.
 */
import type { DockerContainer, Inventory } from '../docker/model.js';
import { UserError } from '../core/errors.js';
import {
  FAMILIES,
  type EgressDestination,
  type EgressPolicy,
  type EgressRule,
  type Family,
  type IngressSource,
  type Policy,
  type PortRange,
} from '../policy/model.js';
import type {
  DesiredFamily,
  DesiredIpset,
  DesiredState,
  EgressExposure,
  OwnedChain,
  OwnedJump,
  PlanWarning,
  PortExposure,
  RuleOrigin,
} from './model.js';
import {
  DIGEST_PREFIX,
  FORWARD_CHAIN,
  INPUT_CHAIN,
  egressChainName,
  ownedRule,
  shortHash,
  sourcesChainName,
} from './naming.js';
import { selectContainers, type Selection } from './select.js';

/** Facts about the live host that compiling needs. */
export interface HostFacts {
  /** Kernel name → family of every ipset on the host (external sets are looked up here). */
  readonly ipsetFamilies: ReadonlyMap<string, Family>;
  /** The chain that receives routed traffic first: DOCKER-USER where Docker made it. */
  readonly forwardHook: Readonly<Record<Family, string>>;
}

export const DEFAULT_HOST_FACTS: HostFacts = {
  ipsetFamilies: new Map(),
  forwardHook: { ipv4: 'DOCKER-USER', ipv6: 'DOCKER-USER' },
};

const REPLIES_FLOW = [
  '-m conntrack --ctdir REPLY -j RETURN',
  '-m conntrack --ctstate RELATED -j RETURN',
];

export function portLabel(port: PortRange): string {
  const range = port.first === port.last ? `${port.first}` : `${port.first}-${port.last}`;
  return `${range}/${port.protocol}`;
}

function portMatch(port: PortRange): string {
  return port.first === port.last ? `${port.first}` : `${port.first}:${port.last}`;
}

function hostAddress(address: string, family: Family): string {
  return family === 'ipv4' ? `${address}/32` : `${address}/128`;
}

function addressesOf(containers: readonly DockerContainer[], family: Family): string[] {
  const out = new Set<string>();
  for (const c of containers) {
    for (const a of c.attachments) {
      const address = family === 'ipv4' ? a.ipv4 : a.ipv6;
      if (address !== undefined) out.add(hostAddress(address, family));
    }
  }
  return [...out].sort();
}

function isLoopback(hostIp: string): boolean {
  return hostIp.startsWith('127.') || hostIp === '::1';
}

function samePortRange(a: PortRange, b: PortRange): boolean {
  return a.protocol === b.protocol && a.first === b.first && a.last === b.last;
}

function covers(range: PortRange, protocol: string, port: number): boolean {
  return range.protocol === protocol && range.first <= port && port <= range.last;
}

/** Ports a group's containers publish, as single-port ranges (tcp and udp only). */
function publishedPorts(containers: readonly DockerContainer[]): PortRange[] {
  const out: PortRange[] = [];
  for (const c of containers) {
    for (const p of c.ports) {
      if (p.protocol === 'sctp') continue;
      const range: PortRange = { protocol: p.protocol, first: p.hostPort, last: p.hostPort };
      if (!out.some((r) => samePortRange(r, range))) out.push(range);
    }
  }
  return out;
}

/** Published ports and the sources allowed to reach them. */
interface IngressEntry {
  readonly group?: string;
  readonly ports: PortRange[];
  readonly sources: readonly IngressSource[];
  /** Where the entry is in the policy: the ingress rule, or `defaults.ingress`. */
  readonly path: readonly (string | number)[];
}

/** A group whose containers' egress moat governs, with those containers. */
interface EgressGroup {
  /** The group's name, or `(ungrouped)` for containers no group selects. */
  readonly name: string;
  readonly egress: EgressPolicy;
  readonly containers: readonly DockerContainer[];
  readonly chain: string;
}

class Compiler {
  private readonly warnings: PlanWarning[] = [];
  private readonly selection: Selection;
  /** `chain\nspec` → the policy entry that first made that rule. */
  private readonly origins = new Map<string, RuleOrigin>();

  private origin(chain: string, specs: readonly string[], origin: RuleOrigin): void {
    for (const spec of specs) {
      const key = `${chain}\n${spec}`;
      if (!this.origins.has(key)) this.origins.set(key, origin);
    }
  }

  constructor(
    private readonly policy: Policy,
    private readonly inventory: Inventory,
    private readonly facts: HostFacts,
  ) {
    this.selection = selectContainers(policy.containers, inventory);
    this.warnings.push(...this.selection.warnings);
  }

  private members(group: string): readonly DockerContainer[] {
    return this.selection.members.get(group) ?? [];
  }

  /** The kernel name and family of a policy ipset key. */
  private ipset(key: string): { name: string; family: Family } {
    const set = this.policy.ipsets.get(key);
    if (set === undefined) throw new UserError(`ipset "${key}" is not declared in the policy`);
    if (set.kind === 'managed') return { name: set.kernelName, family: set.family };
    const family = this.facts.ipsetFamilies.get(set.kernelName);
    if (family === undefined) {
      throw new UserError(
        `external ipset "${set.kernelName}" (policy key "${key}") does not exist on the host; create it first or remove the reference`,
        'missing-external-ipset',
      );
    }
    return { name: set.kernelName, family };
  }

  /** Match fragments for one ingress source in one family; null means "anyone". */
  private sourceMatches(source: IngressSource, family: Family): string[] | null {
    switch (source.kind) {
      case 'any':
        return null;
      case 'host':
        return [];
      case 'cidr':
        return source.block.family === family ? [`-s ${source.block.cidr}`] : [];
      case 'ipset': {
        const set = this.ipset(source.set);
        return set.family === family ? [`-m set --match-set ${set.name} src`] : [];
      }
      case 'container':
        return addressesOf(this.members(source.group), family).map((a) => `-s ${a}`);
    }
  }

  private destinationMatches(to: EgressDestination, family: Family): string[] {
    switch (to.kind) {
      case 'any':
        return [''];
      case 'cidr':
        return to.block.family === family ? [`-d ${to.block.cidr}`] : [];
      case 'ipset': {
        const set = this.ipset(to.set);
        return set.family === family ? [`-m set --match-set ${set.name} dst`] : [];
      }
      case 'container':
        return addressesOf(this.members(to.group), family).map((a) => `-d ${a}`);
    }
  }

  private egressRules(rules: readonly EgressRule[], family: Family, verdict: string): string[] {
    const specs: string[] = [];
    for (const rule of rules) {
      const ports = rule.ports ?? [undefined];
      for (const to of rule.to) {
        for (const dest of this.destinationMatches(to, family)) {
          for (const port of ports) {
            const portPart =
              port === undefined
                ? ''
                : `-p ${port.protocol} -m ${port.protocol} --dport ${portMatch(port)}`;
            specs.push([dest, portPart, `-j ${verdict}`].filter((s) => s !== '').join(' '));
          }
        }
      }
    }
    return specs;
  }

  /** Ports named by a rule, the sources allowed, and what the plan says of them. */
  private ingressEntries(): IngressEntry[] {
    const entries: IngressEntry[] = [];
    const named: PortRange[] = [];
    for (const group of this.policy.containers) {
      for (const [index, rule] of group.ingress.entries()) {
        const ports =
          rule.ports === 'all' ? publishedPorts(this.members(group.name)) : [...rule.ports];
        named.push(...ports);
        const path = ['containers', group.name, 'ingress', index];
        entries.push({ group: group.name, ports, sources: rule.from, path });
        if (rule.ports !== 'all') this.warnUnpublished(group.name, ports);
      }
    }
    const running = this.inventory.containers.filter((c) => c.state === 'running');
    // A port published only on loopback is already unreachable from outside.
    const exposed = running.map((c) => ({
      ...c,
      ports: c.ports.filter((p) => !isLoopback(p.hostIp)),
    }));
    const uncovered = publishedPorts(exposed).filter(
      (p) => !named.some((r) => covers(r, p.protocol, p.first)),
    );
    if (this.policy.defaults.ingress === 'host') {
      if (uncovered.length > 0)
        entries.push({
          ports: uncovered,
          sources: [{ kind: 'host' }],
          path: ['defaults', 'ingress'],
        });
    } else {
      for (const p of uncovered) {
        const owners = running
          .filter((c) => c.ports.some((q) => q.hostPort === p.first && q.protocol === p.protocol))
          .map((c) => c.name);
        this.warnings.push({
          code: 'uncovered-port',
          message: `${owners.join(', ')} publishes ${portLabel(p)}, which no rule names: reachable from anyone (defaults.ingress: allow)`,
        });
      }
    }
    return entries;
  }

  private warnUnpublished(group: string, ports: readonly PortRange[]): void {
    const members = this.members(group);
    if (members.length === 0) return;
    const published = members.flatMap((c) => c.ports);
    for (const range of ports) {
      if (!published.some((p) => covers(range, p.protocol, p.hostPort))) {
        this.warnings.push({
          code: 'port-not-published',
          message: `group "${group}" names ${portLabel(range)}, which none of its containers publishes; the rule protects the port anyway`,
        });
      }
    }
  }

  private effectiveEgress(egress: EgressPolicy | undefined): EgressPolicy | undefined {
    if (egress !== undefined) return egress;
    return this.policy.defaults.egress === 'deny'
      ? { default: 'deny', allow: [], deny: [] }
      : undefined;
  }

  compileFamily(
    family: Family,
    entries: IngressEntry[],
    ipsets: readonly DesiredIpset[],
  ): DesiredFamily {
    const chains = new Map<string, string[]>();
    const forward: string[] = [];
    const input: string[] = [];

    for (const entry of entries) {
      const matches: string[] = [];
      let anyone = false;
      const who = entry.group ?? 'defaults';
      const fromOrigins: [string[], RuleOrigin][] = [];
      for (const [index, source] of entry.sources.entries()) {
        const m = this.sourceMatches(source, family);
        if (m === null) anyone = true;
        else {
          matches.push(...m);
          const what = `${who} ingress from ${describeSources([source])}`;
          fromOrigins.push([
            m.map((x) => `${x} -j RETURN`),
            { path: [...entry.path, 'from', index], what },
          ]);
        }
      }
      if (anyone) continue;
      const body = [...new Set(matches)].map((m) => `${m} -j RETURN`);
      body.push('-j DROP');
      const chain = sourcesChainName(family, body.join('\n'));
      chains.set(chain, body);
      for (const [specs, origin] of fromOrigins) this.origin(chain, specs, origin);
      const ports = entry.ports.map(portLabel).join(', ');
      const ruleOrigin = { path: entry.path, what: `${who} ingress ${ports}: other sources` };
      this.origin(chain, ['-j DROP'], ruleOrigin);
      for (const port of entry.ports) {
        const p = `-p ${port.protocol}`;
        const specs = [
          `${p} -m conntrack --ctstate DNAT --ctdir ORIGINAL --ctorigdstport ${portMatch(port)} -j ${chain}`,
          `! -i lo ${p} -m ${port.protocol} --dport ${portMatch(port)} -j ${chain}`,
        ] as const;
        forward.push(specs[0]);
        input.push(specs[1]);
        const portOrigin = { path: entry.path, what: `${who} ingress ${portLabel(port)}` };
        this.origin(FORWARD_CHAIN, [specs[0]], portOrigin);
        this.origin(INPUT_CHAIN, [specs[1]], portOrigin);
      }
    }

    for (const group of this.egressGroups()) {
      const base =
        group.name === '(ungrouped)'
          ? ['defaults', 'egress']
          : ['containers', group.name, 'egress'];
      const record = (
        kind: 'deny' | 'allow',
        rules: readonly EgressRule[],
        verdict: string,
      ): string[] =>
        rules.flatMap((rule, index) => {
          const specs = this.egressRules([rule], family, verdict);
          this.origin(group.chain, specs, {
            path: [...base, kind, index],
            what: `${group.name} egress ${kind}`,
          });
          return specs;
        });
      const body = [
        ...record('deny', group.egress.deny, 'DROP'),
        ...(group.egress.default === 'deny' ? record('allow', group.egress.allow, 'RETURN') : []),
      ];
      if (group.egress.default === 'deny') {
        body.push('-j DROP');
        this.origin(group.chain, ['-j DROP'], {
          path: base,
          what: `${group.name} egress: default deny`,
        });
      }
      const addresses = addressesOf(group.containers, family);
      if (body.length === 0 || addresses.length === 0) continue;
      chains.set(group.chain, [...new Set(body)]);
      for (const address of addresses) {
        forward.push(`-s ${address} -j ${group.chain}`);
        input.push(`-s ${address} -j ${group.chain}`);
        const origin = { path: base, what: `${group.name} egress` };
        this.origin(FORWARD_CHAIN, [`-s ${address} -j ${group.chain}`], origin);
        this.origin(INPUT_CHAIN, [`-s ${address} -j ${group.chain}`], origin);
      }
    }

    if (forward.length === 0 && input.length === 0) {
      return { family, chains: [], jumps: [], digest: shortHash('') };
    }
    const owned = (name: string, specs: readonly string[]): OwnedChain => ({
      name,
      rules: [...new Set(specs)].map((s) => {
        const origin = this.origins.get(`${name}\n${s}`);
        return origin === undefined ? ownedRule(name, s) : { ...ownedRule(name, s), origin };
      }),
    });
    const body: OwnedChain[] = [
      owned(INPUT_CHAIN, [...REPLIES_FLOW, ...input]),
      ...[...chains.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([n, s]) => owned(n, s)),
    ];
    const jumps: OwnedJump[] = [
      {
        hook: this.facts.forwardHook[family],
        rule: ownedRule(this.facts.forwardHook[family], `-j ${FORWARD_CHAIN}`),
      },
      { hook: 'INPUT', rule: ownedRule('INPUT', `-j ${INPUT_CHAIN}`) },
    ];
    const forwardSpecs = [...REPLIES_FLOW, ...forward];
    const digest = shortHash(
      JSON.stringify([
        ipsets,
        forwardSpecs,
        body.map((c) => [c.name, c.rules.map((r) => r.spec)]),
        jumps.map((j) => [j.hook, j.rule.spec]),
      ]),
    );
    const marker = `-m comment --comment "${DIGEST_PREFIX}${digest}"`;
    return {
      family,
      chains: [owned(FORWARD_CHAIN, [marker, ...forwardSpecs]), ...body],
      jumps,
      digest,
    };
  }

  /** Groups with egress rules (or under `defaults.egress: deny`), each with its containers. */
  private egressGroups(): EgressGroup[] {
    const governed = new Map<string, DockerContainer[]>();
    for (const c of this.inventory.containers) {
      if (c.state !== 'running') continue;
      const owner = this.selection.egressOwner.get(c.name) ?? '';
      governed.set(owner, [...(governed.get(owner) ?? []), c]);
    }
    const groups = [
      ...this.policy.containers.map((g) => ({ key: g.name, egress: g.egress })),
      { key: '', egress: undefined }, // containers no group selects
    ];
    return groups.flatMap(({ key, egress }) => {
      const effective = this.effectiveEgress(egress);
      if (effective === undefined) return [];
      const name = key === '' ? '(ungrouped)' : key;
      const containers = governed.get(key) ?? [];
      return [{ name, egress: effective, containers, chain: egressChainName(name) }];
    });
  }

  egressExposures(): EgressExposure[] {
    return this.egressGroups().map((g) => ({
      group: g.name,
      containers: g.containers.map((c) => c.name),
      chain: g.chain,
      reach: describeEgress(g.egress),
    }));
  }

  exposures(entries: IngressEntry[]): PortExposure[] {
    const out: PortExposure[] = [];
    for (const entry of entries) {
      const reach = describeSources(entry.sources);
      for (const port of entry.ports) {
        out.push({
          ...(entry.group === undefined ? {} : { group: entry.group }),
          port: portLabel(port),
          reach,
        });
      }
    }
    return out;
  }

  ipsets(): DesiredIpset[] {
    const out: DesiredIpset[] = [];
    for (const set of this.policy.ipsets.values()) {
      if (set.kind !== 'managed') continue;
      out.push({
        name: set.kernelName,
        type: set.type,
        family: set.family,
        members: [...set.entries],
      });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  run(): DesiredState {
    const entries = this.ingressEntries();
    const ipsets = this.ipsets();
    const families = {} as Record<Family, DesiredFamily>;
    for (const family of FAMILIES) families[family] = this.compileFamily(family, entries, ipsets);
    return {
      families,
      ipsets,
      exposures: this.exposures(entries),
      egress: this.egressExposures(),
      warnings: this.warnings,
    };
  }
}

function describeDestinations(rules: readonly EgressRule[]): string {
  return rules
    .map((rule) => {
      const to = rule.to
        .map((d) =>
          d.kind === 'any'
            ? 'anywhere'
            : d.kind === 'cidr'
              ? d.block.cidr
              : `${d.kind}:${d.kind === 'ipset' ? d.set : d.group}`,
        )
        .join(', ');
      return rule.ports === undefined ? to : `${to} (${rule.ports.map(portLabel).join(', ')})`;
    })
    .join(', ');
}

/** `may not reach 10.0.0.0/8`, `may reach only ipset:allowed (443/tcp); never 10.0.0.0/8`. */
export function describeEgress(egress: EgressPolicy): string {
  const never = describeDestinations(egress.deny);
  if (egress.default === 'allow')
    return never === '' ? 'may reach anything' : `may not reach ${never}`;
  const only = describeDestinations(egress.allow);
  const allowed =
    only === '' ? 'may reach nothing (routed or to the host)' : `may reach only ${only}`;
  return never === '' ? allowed : `${allowed}; never ${never}`;
}

/** `host only`, `anyone`, or `host, 198.51.100.0/24, ipset:office, container:web`. */
export function describeSources(sources: readonly IngressSource[]): string {
  if (sources.some((s) => s.kind === 'any')) return 'anyone';
  const others = sources
    .filter((s) => s.kind !== 'host')
    .map((s) => {
      switch (s.kind) {
        case 'cidr':
          return s.block.cidr;
        case 'ipset':
          return `ipset:${s.set}`;
        case 'container':
          return `container:${s.group}`;
        default:
          return '';
      }
    });
  return others.length === 0 ? 'host only' : ['host', ...others].join(', ');
}

export function compile(
  policy: Policy,
  inventory: Inventory,
  facts: HostFacts = DEFAULT_HOST_FACTS,
): DesiredState {
  return new Compiler(policy, inventory, facts).run();
}
