/**
 * The plan's sentences checked against packets: for every published port the plan describes,
 * the packet-path evaluator asks the whole ruleset the plan leaves (Docker's and other
 * programs' rules included) whether a client in each region of the address space, each source
 * block the plan names, and an address no rule names can open a connection. Where the answer
 * contradicts the plan's words, the result names both. Pure.
 *
 * Two kinds: `open` (the plan says a client is kept out, a packet gets in: something bypasses
 * moat's rules, e.g. an ACCEPT in FORWARD before DOCKER-USER) and `closed` (the plan says a
 * client may connect, something else drops it). A verdict of `unknown` contradicts nothing.
 */
import type { Glossary } from '../compile/model.js';
import type { PathReach, PortReach } from '../plan/model.js';
import type { Reach } from '../plan/reach.js';
import { portName, reachWords } from '../plan/words.js';
import type { Family } from '../policy/model.js';
import {
  contains,
  formatPrefix,
  parseAddress,
  parsePrefix,
  sameAddress,
  type Address,
  type Prefix,
} from './address.js';
import { setHolds } from './match.js';
import type { Explanation, Probe, World } from './model.js';
import { explain, type SourceSpec, type TargetSpec } from './query.js';

export interface Contradiction {
  /** `unchecked`: the evaluator could not answer (too many regions, facts missing). */
  readonly kind: 'open' | 'closed' | 'unchecked';
  readonly family: Family;
  /** `ghost 2368/tcp`. */
  readonly port: string;
  /** The client: `198.51.100.7` (a probe the plan keeps out), `anyone`, `198.51.100.0/24`. */
  readonly source: string;
  /** What the plan says of the port on this family: `host only`, `anyone`. */
  readonly plan: string;
  /** What the evaluator found, with the rule that decided: `delivered … (filter FORWARD #1: -j ACCEPT)`. */
  readonly found: string;
}

const FAMILY_NAME: Readonly<Record<Family, string>> = { ipv4: 'IPv4', ipv6: 'IPv6' };

/**
 * The first rule (or chain policy) on a probe's way that gave its verdict: the one that decided.
 * An accept decides only in the filter table (raw's, mangle's and nat's pass packets on).
 */
function decidingRule(probe: Probe): string | undefined {
  const reached = probe.outcome.verdict === 'reachable';
  const effect = reached ? /^ACCEPT/ : /^(DROP|REJECT)/;
  for (const step of probe.outcome.trail) {
    if (step.kind === 'note') continue;
    const table = step.kind === 'rule' ? step.rule.table : step.table;
    if (reached && table !== 'filter') continue;
    if (step.kind === 'policy' && effect.test(step.policy))
      return `${step.table} ${step.chain} policy ${step.policy}`;
    if (step.kind === 'rule' && effect.test(step.effect))
      return `${step.rule.table} ${step.rule.chain} #${step.rule.position}: ${step.rule.spec}`;
  }
  return undefined;
}

function foundWords(probe: Probe): string {
  const rule = decidingRule(probe);
  return `${probe.outcome.reason}${rule === undefined ? '' : ` (decided by ${rule})`}`;
}

const EVERYWHERE: Readonly<Record<Family, string>> = { ipv4: '0.0.0.0/0', ipv6: '::/0' };

/** Whether the plan's reach on one path lets a client at `address` in. Unknown kinds do. */
function admits(reach: Reach, address: Address, world: World): boolean {
  if (reach.anyone) return true;
  return reach.sources.some((source) => {
    if (source.startsWith('set:')) {
      const set = world.netfilter.ipsets.get(source.slice(4));
      return set === undefined || setHolds(set, address) !== false;
    }
    const prefix = parsePrefix(source);
    return prefix === undefined || contains(prefix, address);
  });
}

const LOOPBACK = ['127.0.0.0/8', '::1/128'].flatMap((t) => parsePrefix(t) ?? []);

/** The host itself: a loopback address or one on its interfaces (the plan always admits it). */
function isHostAddress(world: World, address: Address): boolean {
  if (LOOPBACK.some((prefix) => contains(prefix, address))) return true;
  return world.network.interfaces.some((i) =>
    i.addresses.some((a) => {
      const own = parseAddress(a.address);
      return own !== undefined && sameAddress(own, address);
    }),
  );
}

function isHostProbe(world: World, probe: Probe): boolean {
  const address = parseAddress(probe.from.address);
  return address !== undefined && isHostAddress(world, address);
}

/** Whether a probe's client sits in a Docker network's subnet (a container, not a client). */
function isContainer(world: World, probe: Probe): boolean {
  const address = parseAddress(probe.from.address);
  if (address === undefined) return false;
  return world.inventory.networks.some((n) =>
    n.subnets.some((s) => {
      const prefix = parsePrefix(s);
      return prefix !== undefined && contains(prefix, address);
    }),
  );
}

function probesOf(explanation: Explanation, family: Family): readonly Probe[] {
  return explanation.answers.find((a) => a.family === family)?.probes ?? [];
}

/** The source blocks the plan names on a family (`set:` sources are checked by region). */
function blocksOf(paths: readonly PathReach[]): Prefix[] {
  const blocks = [...new Set(paths.flatMap((p) => p.now.sources))];
  return blocks.flatMap((s) => {
    const prefix = s.startsWith('set:') ? undefined : parsePrefix(s);
    return prefix === undefined ? [] : [prefix];
  });
}

/**
 * One family of one port: every region of the address space (as the ruleset, routes and
 * subnets cut it) is probed; a client the plan keeps out that gets in is `open`; a client the
 * plan lets in that a rule drops is `closed` (a client with no route back is not a rule's doing).
 */
function checkFamily(
  world: World,
  port: PortReach,
  family: Family,
  glossary: Glossary,
): Contradiction[] {
  const paths = port.paths.filter((p) => p.family === family);
  if (paths.length === 0 || paths.some((p) => p.now.unknown !== undefined)) return [];
  const target: TargetSpec = {
    kind: 'container',
    name: port.container,
    port: port.port,
    protocol: port.protocol,
  };
  const base = {
    family,
    port: portName(port),
    plan: [...new Set(paths.map((p) => reachWords(p.now, glossary)))].join(' / '),
  };
  const admitted = (probe: Probe): boolean => {
    const address = parseAddress(probe.from.address);
    if (address === undefined || isHostAddress(world, address)) return true;
    return paths.some((p) => admits(p.now, address, world));
  };
  const everywhere = parsePrefix(EVERYWHERE[family]) as Prefix;
  const answer = explain(world, { kind: 'cidr', prefix: everywhere }, target, {
    // moat's own rules are what the plan computed; other programs' rules and the blocks this
    // port admits cut the address space.
    regions: { foreignOnly: true, extra: blocksOf(paths) },
  }).answers.find((a) => a.family === family);
  const probes = answer?.probes ?? [];
  const found: Contradiction[] = [];
  if (answer !== undefined && probes.length === 0 && answer.note !== undefined)
    return [{ ...base, kind: 'unchecked', source: 'anyone', found: answer.note }];
  // The plan's words are about clients from outside (src/plan/reach.ts): a neighbour on a
  // Docker network is not one of them (a routed network's own members reach each other).
  const intruder = probes.find(
    (p) => p.outcome.verdict === 'reachable' && !admitted(p) && !isContainer(world, p),
  );
  if (intruder !== undefined)
    found.push({
      ...base,
      kind: 'open',
      source: intruder.from.address,
      found: foundWords(intruder),
    });
  // Containers are left out: Docker's isolation and their own egress rules may stop them.
  const refused = (p: Probe) =>
    p.outcome.verdict === 'blocked' &&
    decidingRule(p) !== undefined &&
    !isContainer(world, p) &&
    !isHostProbe(world, p);
  if (paths.every((p) => p.now.anyone)) {
    // An address no rule names: a blocklist (fail2ban, CrowdSec) does not make "anyone" false.
    const dropped = probesOf(explain(world, { kind: 'anyone' }, target), family).find(refused);
    if (dropped !== undefined)
      found.push({
        ...base,
        kind: 'closed',
        source: `anyone (e.g. ${dropped.from.address})`,
        found: foundWords(dropped),
      });
    return found;
  }
  for (const prefix of blocksOf(paths).filter((b) => b.family === family)) {
    const source: SourceSpec = { kind: 'cidr', prefix };
    const dropped = probesOf(explain(world, source, target), family).find(refused);
    if (dropped !== undefined)
      found.push({
        ...base,
        kind: 'closed',
        source: formatPrefix(prefix),
        found: foundWords(dropped),
      });
  }
  return found;
}

function checkPort(world: World, port: PortReach, glossary: Glossary): Contradiction[] {
  return [...new Set(port.paths.map((p) => p.family))].flatMap((family) =>
    checkFamily(world, port, family, glossary),
  );
}

/** Every contradiction between the plan's reach sentences and the evaluated ruleset `after`. */
export interface CrossCheck {
  readonly contradictions: readonly Contradiction[];
  /** Ports left unchecked when `keepGoing` said stop (a large host's time budget). */
  readonly skipped: readonly string[];
}

/** Ports whose words change first, then ports kept from anyone, then ports open to anyone. */
function priority(port: PortReach): number {
  const changed = port.paths.some((p) => JSON.stringify(p.now) !== JSON.stringify(p.was));
  const restricted = port.paths.some((p) => !p.now.anyone);
  return (changed ? 0 : 2) + (restricted ? 0 : 1);
}

/**
 * Every contradiction between the plan's reach sentences and the evaluated ruleset `after`.
 * `keepGoing` is asked before each port (the caller's clock: this module reads none).
 */
export function crossCheck(
  after: World,
  exposures: readonly PortReach[],
  glossary: Glossary,
  keepGoing: () => boolean = () => true,
): CrossCheck {
  const ordered = [...exposures].sort((a, b) => priority(a) - priority(b));
  const contradictions: Contradiction[] = [];
  for (const [i, port] of ordered.entries()) {
    if (!keepGoing()) return { contradictions, skipped: ordered.slice(i).map(portName) };
    contradictions.push(...checkPort(after, port, glossary));
  }
  return { contradictions, skipped: [] };
}

/** One line: `ghost 2368/tcp over IPv4: the plan says host only, yet 198.51.100.7 gets in: …`. */
export function contradictionWords(c: Contradiction): string {
  if (c.kind === 'unchecked')
    return `${c.port} over ${FAMILY_NAME[c.family]}: not checked against the whole ruleset: ${c.found}`;
  const what = c.kind === 'open' ? `${c.source} gets in` : `${c.source} is dropped`;
  return `${c.port} over ${FAMILY_NAME[c.family]}: the plan says ${c.plan}, yet ${what} on the ruleset after the plan: ${c.found}`;
}
