/**
 * Compile: policy + Docker inventory (+ the few facts of the live host it needs) → the chains,
 * jumps and ipsets moat wants. Pure and deterministic.
 *
 * The layout, per family, in the filter table (see docs/how-it-works.md):
 *   DOCKER-USER (or FORWARD) → MOAT-FORWARD   routed traffic
 *     replies and RELATED packets RETURN first
 *     --ctstate DNAT        → MOAT-INGRESS    published host ports: -g MOAT-SRC-… per port
 *                                             segment; `defaults.ingress: host` drops the rest
 *                                             going into a Docker bridge
 *     -i <Docker bridge>    → MOAT-EGRESS     containers' connections: -g MOAT-EGR-… per
 *                                             governed address; `defaults.egress: deny` drops
 *                                             the rest
 *     -o <Docker bridge> ! --ctstate DNAT → MOAT-DIRECT   routed gateway modes, direct access:
 *                                             from outside Docker's networks → MOAT-DIRECT-PORTS
 *   INPUT → MOAT-INPUT    traffic to the host itself: containers' egress, and docker-proxy
 *                         (the same port segments as MOAT-INGRESS, keyed on the port)
 * moat only ever RETURNs (hands the packet back to Docker's and the user's rules) or DROPs.
 */
import {
  DIGEST_PREFIX,
  DIRECT_CHAIN,
  DIRECT_PORTS_CHAIN,
  EGRESS_CHAIN,
  FORWARD_CHAIN,
  INGRESS_CHAIN,
  INPUT_CHAIN,
  shortHash,
} from '../core/ownership.js';
import type { Inventory } from '../docker/model.js';
import { FAMILIES, type Family, type Policy } from '../policy/model.js';
import { dockerBridges, type DockerBridges } from './bridges.js';
import { CompileContext } from './context.js';
import { DEFAULTS_EGRESS, Egress } from './egress.js';
import { DEFAULT_HOST_FACTS, type HostFacts } from './host-facts.js';
import { DEFAULTS_INGRESS, Ingress, portMatch } from './ingress.js';
import type {
  DesiredFamily,
  DesiredIpset,
  DesiredState,
  Glossary,
  OwnedChain,
  OwnedJump,
  RuleOrigin,
} from './model.js';
import { ownedRule, sourcesChainName } from './naming.js';
import { sourceSetKey, type SourceSet } from './segments.js';
import { compileWarnings } from './warnings.js';

export { DEFAULT_HOST_FACTS, type HostFacts } from './host-facts.js';

const REPLIES_FLOW = [
  '-m conntrack --ctdir REPLY -j RETURN',
  '-m conntrack --ctstate RELATED -j RETURN',
];
const LOOPBACK: Record<Family, string> = { ipv4: '127.0.0.0/8', ipv6: '::1/128' };
const ICMP: Record<Family, string> = { ipv4: 'icmp', ipv6: 'ipv6-icmp' };
/** Neighbour discovery a container needs to reach its gateway at all, replies included. */
const NEIGHBOUR_DISCOVERY = [
  'router-solicitation',
  'neighbour-solicitation',
  'neighbour-advertisement',
];

interface Spec {
  readonly spec: string;
  readonly origins: readonly RuleOrigin[];
}

const structural = (spec: string): Spec => ({ spec, origins: [] });

/** One family's chains as they are assembled. */
class FamilyBuilder {
  readonly derived = new Map<string, Spec[]>();
  /** Sources and origins → the verdict already made for them (ingress and INPUT share them). */
  private readonly verdicts = new Map<string, string>();

  constructor(
    readonly family: Family,
    private readonly context: CompileContext,
  ) {}

  /** What a rule matching some port does with its sources: RETURN, DROP, or -g a chain. */
  verdictFor(sources: SourceSet, origins: readonly RuleOrigin[]): string {
    if (sources.anyone) return '-j RETURN';
    const key = `${sourceSetKey(sources)}|${JSON.stringify(origins.map((o) => o.path))}`;
    const known = this.verdicts.get(key);
    if (known !== undefined) return known;
    const matches = this.context.sourceMatches(sources, this.family);
    let verdict = '-j DROP';
    if (matches.length > 0) {
      const body = [...matches.map((m) => `${m} -j RETURN`), '-j DROP'];
      const name = sourcesChainName(this.family, `${body.join('\n')}\n${key}`);
      this.derived.set(
        name,
        body.map((spec) => ({ spec, origins })),
      );
      verdict = `-g ${name}`;
    }
    this.verdicts.set(key, verdict);
    return verdict;
  }
}

class Compiler {
  private readonly context: CompileContext;
  private readonly ingress: Ingress;
  private readonly egress: Egress;
  private readonly bridges: DockerBridges;

  constructor(policy: Policy, inventory: Inventory, facts: HostFacts) {
    this.context = new CompileContext(policy, inventory, facts);
    this.ingress = new Ingress(this.context);
    this.egress = new Egress(this.context);
    this.bridges = dockerBridges(this.context);
  }

  private get defaultHost(): boolean {
    return this.context.policy.defaults.ingress === 'host';
  }

  private ingressChain(b: FamilyBuilder): Spec[] {
    const rules: Spec[] = [];
    for (const segment of this.ingress.segments) {
      if (segment.sources.anyone && !this.defaultHost) continue;
      const match = `-p ${segment.protocol} -m conntrack --ctorigdstport ${portMatch(segment)}`;
      rules.push({
        spec: `${match} ${b.verdictFor(segment.sources, segment.origins)}`,
        origins: segment.origins,
      });
    }
    if (this.defaultHost) {
      for (const i of this.bridges.exempt) rules.push(structural(`-o ${i} -j RETURN`));
      for (const p of this.bridges.patterns)
        rules.push({ spec: `-o ${p} -j DROP`, origins: [DEFAULTS_INGRESS] });
    }
    if (rules.length === 0) return [];
    // A port published on loopback is the host's alone; a neighbour that sends to 127.0.0.1
    // (possible where Docker turned route_localnet on) is never let through.
    return [structural(`-m conntrack --ctorigdst ${LOOPBACK[b.family]} -j DROP`), ...rules];
  }

  /**
   * The direct path: MOAT-DIRECT lets traffic from inside Docker's networks go (a container
   * talking to a neighbour is not ingress; Docker isolates networks from each other), then
   * MOAT-DIRECT-PORTS holds what comes from outside. Matching on input interfaces, not on
   * `physdev`, keeps moat from loading br_netfilter on a host that has not.
   */
  private directChains(b: FamilyBuilder): { dispatch: Spec[]; ports: Spec[] } {
    const rules: Spec[] = this.ingress.directEntries(b.family).map((e) => {
      const address =
        e.address === undefined ? '' : ` -d ${e.address}/${b.family === 'ipv4' ? 32 : 128}`;
      const match = `-o ${e.bridge}${address} -p ${e.protocol} -m ${e.protocol} --dport ${e.containerPort}`;
      return { spec: `${match} ${b.verdictFor(e.sources, e.origins)}`, origins: e.origins };
    });
    if (this.defaultHost) rules.push({ spec: '-j DROP', origins: [DEFAULTS_INGRESS] });
    if (rules.length === 0) return { dispatch: [], ports: [] };
    const { exempt, patterns } = this.bridges;
    const toPorts = `-g ${DIRECT_PORTS_CHAIN}`;
    return {
      dispatch: [
        ...exempt.map((i) => structural(`-o ${i} -j RETURN`)),
        ...exempt.map((i) => structural(`-i ${i} ${toPorts}`)),
        ...patterns.map((p) => structural(`-i ${p} -j RETURN`)),
        structural(toPorts),
      ],
      ports: [structural(`-p ${ICMP[b.family]} -j RETURN`), ...rules],
    };
  }

  private egressChain(b: FamilyBuilder): Spec[] {
    const rules: Spec[] = [];
    for (const group of this.egress.groups) {
      const body = this.egress.chainBody(group, b.family);
      const addresses = this.egress.addresses(group, b.family);
      if (addresses.length === 0) continue;
      const origins = [{ path: ['containers', group.name, 'egress'] }];
      if (body.length > 0) {
        b.derived.set(
          group.chain,
          body.map((s) => ({ spec: s.spec, origins: [s.origin] })),
        );
        for (const a of addresses) rules.push({ spec: `-s ${a} -g ${group.chain}`, origins });
      } else if (this.egress.defaultDeny) {
        for (const a of addresses) rules.push({ spec: `-s ${a} -j RETURN`, origins });
      }
    }
    if (this.egress.defaultDeny) rules.push({ spec: '-j DROP', origins: [DEFAULTS_EGRESS] });
    if (rules.length === 0) return [];
    const discovery =
      b.family === 'ipv6'
        ? NEIGHBOUR_DISCOVERY.map((t) =>
            structural(`-p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j RETURN`),
          )
        : [];
    return [
      ...discovery,
      ...this.bridges.exempt.map((i) => structural(`-i ${i} -j RETURN`)),
      ...rules,
    ];
  }

  /** The docker-proxy path: the same port segments, keyed on the port in INPUT. */
  private inputIngress(b: FamilyBuilder): Spec[] {
    const rules: Spec[] = [];
    for (const segment of this.ingress.segments) {
      if (segment.sources.anyone) continue;
      const match = `! -i lo -p ${segment.protocol} -m ${segment.protocol} --dport ${portMatch(segment)}`;
      rules.push({
        spec: `${match} ${b.verdictFor(segment.sources, segment.origins)}`,
        origins: segment.origins,
      });
    }
    if (this.defaultHost) {
      for (const port of this.ingress.unnamedPublishedPorts()) {
        if (this.ingress.foreignListeners(port).length > 0) continue;
        rules.push({
          spec: `! -i lo -p ${port.protocol} -m ${port.protocol} --dport ${port.first} -j DROP`,
          origins: [DEFAULTS_INGRESS],
        });
      }
    }
    return rules;
  }

  private family(family: Family, ipsets: readonly DesiredIpset[]): DesiredFamily {
    const b = new FamilyBuilder(family, this.context);
    const ingress = this.ingressChain(b);
    const { dispatch: direct, ports: directPorts } = this.directChains(b);
    const egress = this.egressChain(b);
    const inputIngress = this.inputIngress(b);
    if (
      ingress.length + direct.length + egress.length + inputIngress.length === 0 &&
      b.derived.size === 0
    ) {
      return { family, chains: [], jumps: [], digest: shortHash('') };
    }
    const patterns = this.bridges.patterns;
    const toEgress =
      egress.length === 0 ? [] : patterns.map((p) => structural(`-i ${p} -j ${EGRESS_CHAIN}`));
    const forward: Spec[] = [
      ...REPLIES_FLOW.map(structural),
      ...(ingress.length === 0
        ? []
        : [structural(`-m conntrack --ctstate DNAT -j ${INGRESS_CHAIN}`)]),
      ...toEgress,
      ...(direct.length === 0
        ? []
        : patterns.map((p) =>
            structural(`-o ${p} -m conntrack ! --ctstate DNAT -j ${DIRECT_CHAIN}`),
          )),
    ];
    const input: Spec[] = [...REPLIES_FLOW.map(structural), ...toEgress, ...inputIngress];
    const owned = (name: string, specs: readonly Spec[]): OwnedChain => {
      const seen = new Set<string>();
      return {
        name,
        rules: specs
          .filter((s) => !seen.has(s.spec) && (seen.add(s.spec), true))
          .map((s) => ownedRule(name, s.spec, s.origins)),
      };
    };
    const body: OwnedChain[] = [
      owned(INPUT_CHAIN, input),
      ...(ingress.length === 0 ? [] : [owned(INGRESS_CHAIN, ingress)]),
      ...(egress.length === 0 ? [] : [owned(EGRESS_CHAIN, egress)]),
      ...(direct.length === 0
        ? []
        : [owned(DIRECT_CHAIN, direct), owned(DIRECT_PORTS_CHAIN, directPorts)]),
      ...[...b.derived.entries()]
        .sort(([x], [y]) => x.localeCompare(y))
        .map(([n, s]) => owned(n, s)),
    ];
    const hook = this.context.facts.forwardHook[family];
    const jumps: OwnedJump[] = [
      { hook, rule: ownedRule(hook, `-j ${FORWARD_CHAIN}`) },
      { hook: 'INPUT', rule: ownedRule('INPUT', `-j ${INPUT_CHAIN}`) },
    ];
    const digest = shortHash(
      JSON.stringify([
        ipsets,
        forward.map((s) => s.spec),
        body.map((c) => [c.name, c.rules.map((r) => r.spec)]),
        jumps.map((j) => [j.hook, j.rule.spec]),
      ]),
    );
    const marker = structural(`-m comment --comment "${DIGEST_PREFIX}${digest}"`);
    return {
      family,
      chains: [owned(FORWARD_CHAIN, [marker, ...forward]), ...body],
      jumps,
      digest,
    };
  }

  private ipsets(): DesiredIpset[] {
    const out: DesiredIpset[] = [];
    for (const set of this.context.policy.ipsets.values()) {
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

  private glossary(): Glossary {
    const ipsets: Record<string, string> = {};
    for (const [key, set] of this.context.policy.ipsets) ipsets[set.kernelName] = `ipset:${key}`;
    const addresses: Record<string, string> = {};
    for (const group of this.context.policy.containers) {
      for (const family of FAMILIES)
        for (const a of this.context.groupAddresses(group.name, family))
          addresses[a] ??= `container:${group.name}`;
    }
    return { ipsets, addresses };
  }

  run(): DesiredState {
    this.ingress.checkHostServices();
    const ipsets = this.ipsets();
    const families = {} as Record<Family, DesiredFamily>;
    for (const family of FAMILIES) families[family] = this.family(family, ipsets);
    compileWarnings(this.context, this.ingress);
    return {
      families,
      ipsets,
      publications: this.ingress.publications(),
      egress: this.egress.exposures(),
      glossary: this.glossary(),
      warnings: this.context.warnings,
    };
  }
}

export function compile(
  policy: Policy,
  inventory: Inventory,
  facts: HostFacts = DEFAULT_HOST_FACTS,
): DesiredState {
  return new Compiler(policy, inventory, facts).run();
}
