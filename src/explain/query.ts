/**
 * Questions in the user's words ("from 198.51.100.7", "from container:api", "to ghost:2368/tcp",
 * "from anyone") → concrete probes per family → verdicts. This is the evaluator's API: `moat
 * explain` and `moat test` use it, and so does `plan`'s check of its own words
 * (cross-check.ts, on `worldAfterPlan(...)`). Pure.
 */
import { FAMILIES, type Family } from '../policy/model.js';
import { formatAddress, type Address } from './address.js';
import { describeSource, describeTarget, type SourceSpec, type TargetSpec } from './endpoints.js';
import { explore } from './explore.js';
import type { HostView } from './host-view.js';
import type {
  Explanation,
  FamilyAnswer,
  Probe,
  ProbeEnd,
  ProbeOutcome,
  Summary,
  Unmodelled,
  World,
} from './model.js';
import { walkConnection, type ConnectionSpec, type Start } from './path.js';
import { Resolver, Undecided, type From, type ResolverOptions, type To } from './resolve.js';

export {
  describeSource,
  describeTarget,
  parseSource,
  parseTarget,
  QuestionError,
  type SourceSpec,
  type TargetSpec,
} from './endpoints.js';

export interface ExplainOptions extends ResolverOptions {
  /** Only these families (default: every family the endpoints allow). */
  readonly families?: readonly Family[];
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
  const resolver = new Resolver(world, options);
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
