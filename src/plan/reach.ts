/**
 * Who may reach a published port, computed from moat's rules rather than from the policy's
 * words: the same function reads the rules moat is about to write and the rules the host holds,
 * so "reachable from host only (was: anyone)" compares two results of one evaluation, as data.
 *
 * It walks moat's own chains for a new connection on one path (DNATed to a host port, routed to
 * the container's address, or accepted by docker-proxy on the host) with a symbolic source:
 * every `-s` block and `--match-set … src` in moat's chains is an opaque source, plus "anyone
 * else". Docker's and other programs' chains are outside its view: it answers what moat's rules
 * let through, and a match it does not know makes the answer unknown, never a guess. Pure.
 */
import type { DesiredFamily } from '../compile/model.js';
import { FORWARD_CHAIN, INPUT_CHAIN, isOwnedChain } from '../core/ownership.js';
import type { LiveRuleset } from '../netfilter/model.js';
import type { Family, Protocol } from '../policy/model.js';

/** The packet a path presents to moat's hook chain. */
export interface PathPacket {
  readonly family: Family;
  readonly path: 'dnat' | 'direct' | 'proxy';
  readonly protocol: Protocol;
  /** The port the client connects to (host port for dnat/proxy, container port for direct). */
  readonly port: number;
  /** The port the packet carries when filtered: after DNAT, the container's. */
  readonly containerPort: number;
  /** The interface the packet leaves by (the container's bridge); dnat and direct. */
  readonly outInterface?: string;
  /** The address the client connects to (the container's, for direct). */
  readonly destination?: string;
  /** The address the client used before DNAT (the published host address), if known. */
  readonly originalDestination?: string;
}

/** Who passes moat's rules. The host itself always does (its traffic is not filtered). */
export interface Reach {
  readonly anyone: boolean;
  /** Sources moat lets through, in kernel terms: `198.51.100.0/24`, `set:moat-office`. */
  readonly sources: readonly string[];
  /** Set when a rule moat could not read decided; the rule's text. */
  readonly unknown?: string;
}

/** A family's filter chains as rule specs, and which hooks jump to moat's chains. */
export interface RuleView {
  readonly chains: ReadonlyMap<string, readonly string[]>;
  /** Whether routed (FORWARD) and local (INPUT) traffic reaches moat's chains at all. */
  readonly hooked: { readonly forward: boolean; readonly input: boolean };
}

const OUTSIDE_INTERFACE = '\u0000outside';
const ANYONE_ELSE = '\u0000anyone';

type Outcome = 'pass' | 'drop' | { unknown: string };
type Test = boolean | 'unknown';

/** Splits a rule spec into words, keeping quoted strings whole. */
function words(spec: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(spec); m !== null; m = re.exec(spec)) out.push(m[1] ?? m[2] ?? '');
  return out;
}

function withPrefix(address: string, family: Family): string {
  return address.includes('/') ? address : `${address}/${family === 'ipv4' ? 32 : 128}`;
}

function interfaceMatches(pattern: string, name: string | undefined): boolean {
  if (name === undefined) return false;
  return pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

function range(text: string): readonly [number, number] {
  const [a = NaN, b] = text.split(':').map(Number);
  return [a, b ?? a];
}

/** One match of a rule, read once. */
type Condition = { readonly negate: boolean } & (
  | { readonly key: 'protocol' | 'in' | 'out' | 'ctdir'; readonly value: string }
  | { readonly key: 'source' | 'destination' | 'ctorigdst'; readonly value: string }
  | { readonly key: 'set'; readonly value: string; readonly direction: string }
  | { readonly key: 'ctstate'; readonly states: readonly string[] }
  | { readonly key: 'ctorigdstport' | 'dport'; readonly range: readonly [number, number] }
  /** A match moat cannot read: the answer is unknown if the packet gets this far. */
  | { readonly key: 'unknown' }
);

interface ParsedRule {
  readonly text: string;
  readonly conditions: readonly Condition[];
  readonly target?: { readonly kind: 'jump' | 'goto'; readonly chain: string };
}

const OPTIONS: Readonly<Record<string, Condition['key']>> = {
  '-p': 'protocol',
  '-s': 'source',
  '-d': 'destination',
  '-i': 'in',
  '-o': 'out',
  '--ctdir': 'ctdir',
  '--ctorigdst': 'ctorigdst',
};

function parseRule(chain: string, spec: string): ParsedRule {
  const w = words(spec);
  const conditions: Condition[] = [];
  let target: ParsedRule['target'];
  for (let i = 0; i < w.length; i++) {
    const negate = w[i] === '!';
    if (negate) i++;
    const key = w[i] ?? '';
    const value = w[i + 1] ?? '';
    if (key === '-m' || key === '--comment') {
      i++;
      continue;
    }
    if (key === '-j' || key === '-g') {
      target = { kind: key === '-g' ? 'goto' : 'jump', chain: value };
      break;
    }
    const simple = OPTIONS[key];
    if (simple === 'source' || simple === 'destination' || simple === 'ctorigdst')
      conditions.push({ key: simple, value, negate });
    else if (simple !== undefined) conditions.push({ key: simple as 'protocol', value, negate });
    else if (key === '--ctstate')
      conditions.push({ key: 'ctstate', states: value.split(','), negate });
    else if (key === '--ctorigdstport' || key === '--dport')
      conditions.push({
        key: key === '--dport' ? 'dport' : 'ctorigdstport',
        range: range(value),
        negate,
      });
    else if (key === '--match-set') {
      conditions.push({ key: 'set', value, direction: w[i + 2] ?? '', negate });
      i++;
    } else {
      conditions.push({ key: 'unknown', negate: false });
      const tail = / -([jg]) (\S+)$/.exec(spec);
      if (tail !== null) target = { kind: tail[1] === 'g' ? 'goto' : 'jump', chain: tail[2] ?? '' };
      break;
    }
    i++;
  }
  return { text: `-A ${chain} ${spec}`, conditions, ...(target === undefined ? {} : { target }) };
}

/**
 * A chain read once, with an index so a walk skips, in O(1), the rules that demand one exact
 * port the packet does not have: moat's dispatch chains hold a rule per port, and a plan asks
 * about every published port.
 */
interface IndexedChain {
  readonly rules: readonly ParsedRule[];
  /** Per rule: `field|protocol|port` when it matches only that exact port, else undefined. */
  readonly keys: readonly (string | undefined)[];
  /** Per rule: the index of the next rule with no such key (the end of its run). */
  readonly runEnd: readonly number[];
  /** `field|protocol|port` → the indices of the rules that demand it, ascending. */
  readonly byKey: ReadonlyMap<string, readonly number[]>;
}

function exactPortKey(rule: ParsedRule): string | undefined {
  const protocol = rule.conditions.find((c) => c.key === 'protocol' && !c.negate);
  const ports = rule.conditions.filter(
    (c): c is Condition & { key: 'ctorigdstport' | 'dport' } =>
      c.key === 'ctorigdstport' || c.key === 'dport',
  );
  const port = ports[0];
  if (protocol?.key !== 'protocol' || ports.length !== 1 || port === undefined || port.negate)
    return undefined;
  if (port.range[0] !== port.range[1]) return undefined;
  return `${port.key}|${protocol.value}|${port.range[0]}`;
}

function indexed(name: string, specs: readonly string[]): IndexedChain {
  const rules = specs.map((s) => parseRule(name, s));
  const keys = rules.map(exactPortKey);
  const runEnd: number[] = new Array<number>(rules.length);
  let end = rules.length;
  for (let i = rules.length - 1; i >= 0; i--) {
    if (keys[i] === undefined) end = i;
    runEnd[i] = keys[i] === undefined ? i + 1 : end;
  }
  const byKey = new Map<string, number[]>();
  keys.forEach((k, i) => {
    if (k !== undefined) byKey.set(k, [...(byKey.get(k) ?? []), i]);
  });
  return { rules, keys, runEnd, byKey };
}

/** A view's chains, each read and indexed the first time a walk enters it. */
class ParsedView {
  private readonly done = new Map<string, IndexedChain>();

  constructor(private readonly view: RuleView) {}

  has(chain: string): boolean {
    return this.view.chains.has(chain);
  }

  get(chain: string): IndexedChain | undefined {
    let c = this.done.get(chain);
    if (c === undefined) {
      const specs = this.view.chains.get(chain);
      if (specs === undefined) return undefined;
      c = indexed(chain, specs);
      this.done.set(chain, c);
    }
    return c;
  }
}

const parsedViews = new WeakMap<RuleView, ParsedView>();

function parsed(view: RuleView): ParsedView {
  let chains = parsedViews.get(view);
  if (chains === undefined) {
    chains = new ParsedView(view);
    parsedViews.set(view, chains);
  }
  return chains;
}

/** The keys a packet's ports have: a rule keyed otherwise cannot match it. */
function packetKeys(packet: PathPacket): Set<string> {
  const dnat = packet.path === 'dnat';
  const keys = new Set([`dport|${packet.protocol}|${dnat ? packet.containerPort : packet.port}`]);
  if (dnat) keys.add(`ctorigdstport|${packet.protocol}|${packet.port}`);
  return keys;
}

/** Whether one condition holds for a packet from `source`; source atoms met go to `seen`. */
function holds(c: Condition, packet: PathPacket, source: string, seen: Set<string>): Test {
  const dnat = packet.path === 'dnat';
  switch (c.key) {
    case 'protocol':
      return c.value === packet.protocol;
    case 'source': {
      const atom = withPrefix(c.value, packet.family);
      seen.add(atom);
      return atom === source;
    }
    case 'destination':
      return (
        packet.destination !== undefined &&
        withPrefix(c.value, packet.family) === withPrefix(packet.destination, packet.family)
      );
    case 'in':
      return interfaceMatches(c.value, OUTSIDE_INTERFACE);
    case 'out':
      return packet.path !== 'proxy' && interfaceMatches(c.value, packet.outInterface);
    case 'ctstate':
      return c.states.includes('DNAT') ? dnat : c.states.includes('NEW');
    case 'ctdir':
      return c.value === 'ORIGINAL';
    case 'ctorigdstport':
      return dnat && c.range[0] <= packet.port && packet.port <= c.range[1];
    case 'ctorigdst':
      return (
        dnat &&
        packet.originalDestination !== undefined &&
        withPrefix(c.value, packet.family) === withPrefix(packet.originalDestination, packet.family)
      );
    case 'dport': {
      const port = dnat ? packet.containerPort : packet.port;
      return c.range[0] <= port && port <= c.range[1];
    }
    case 'unknown':
      return 'unknown';
    case 'set': {
      if (c.direction !== 'src') return 'unknown';
      const atom = `set:${c.value}`;
      seen.add(atom);
      return atom === source;
    }
  }
}

/** What one rule does to a packet that matched it. */
function verdictOf(
  chains: ParsedView,
  rule: ParsedRule,
  packet: PathPacket,
  source: string,
  seen: Set<string>,
  depth: number,
): Outcome | 'return' | 'continue' {
  for (const c of rule.conditions) {
    const result = holds(c, packet, source, seen);
    if (result === 'unknown') return { unknown: rule.text };
    if (result === c.negate) return 'continue';
  }
  const target = rule.target;
  if (target === undefined) return 'continue';
  if (target.chain === 'DROP' || target.chain === 'REJECT') return 'drop';
  if (target.chain === 'RETURN') return 'return';
  if (target.chain === 'ACCEPT') return 'pass';
  if (!chains.has(target.chain)) return 'continue'; // a non-terminating target (LOG, NFLOG, …)
  const inner = walk(chains, target.chain, packet, source, seen, depth + 1);
  if (inner !== 'return') return inner;
  return target.kind === 'goto' ? 'return' : 'continue';
}

/** Walks a chain for a packet from `source`; `return` means it fell off or RETURNed. */
function walk(
  chains: ParsedView,
  chain: string,
  packet: PathPacket,
  source: string,
  seen: Set<string>,
  depth: number,
): Outcome | 'return' {
  if (depth > 16) return { unknown: `chains nested deeper than 16 at ${chain}` };
  const c = chains.get(chain);
  if (c === undefined) return 'return';
  const keys = packetKeys(packet);
  for (let i = 0; i < c.rules.length;) {
    if (c.keys[i] === undefined) {
      const r = verdictOf(chains, c.rules[i] as ParsedRule, packet, source, seen, depth);
      if (r !== 'continue') return r;
      i++;
      continue;
    }
    // A run of rules that each demand one exact port: only those keyed on the packet's own.
    const end = c.runEnd[i] ?? c.rules.length;
    const candidates = [...keys]
      .flatMap((k) => c.byKey.get(k) ?? [])
      .filter((j) => j >= i && j < end)
      .sort((a, b) => a - b);
    for (const j of candidates) {
      const r = verdictOf(chains, c.rules[j] as ParsedRule, packet, source, seen, depth);
      if (r !== 'continue') return r;
    }
    i = end;
  }
  return 'return';
}

/**
 * Who passes moat's rules on one path. The source is symbolic: a walk for "anyone else" meets
 * the source conditions on its way, and each source met is walked again, until no new one turns up.
 */
export function reachOn(view: RuleView, packet: PathPacket): Reach {
  const hooked = packet.path === 'proxy' ? view.hooked.input : view.hooked.forward;
  if (!hooked) return { anyone: true, sources: [] };
  const chains = parsed(view);
  const start = packet.path === 'proxy' ? INPUT_CHAIN : FORWARD_CHAIN;
  const seen = new Set<string>();
  const outcome = (source: string): Outcome => {
    const r = walk(chains, start, packet, source, seen, 0);
    return r === 'return' ? 'pass' : r;
  };
  const other = outcome(ANYONE_ELSE);
  if (typeof other === 'object') return { anyone: false, sources: [], unknown: other.unknown };
  if (other === 'pass') return { anyone: true, sources: [] };
  const sources = new Set<string>();
  const tried = new Set<string>();
  for (
    let pending = [...seen];
    pending.length > 0;
    pending = [...seen].filter((s) => !tried.has(s))
  ) {
    for (const candidate of pending) {
      tried.add(candidate);
      const r = outcome(candidate);
      if (typeof r === 'object') return { anyone: false, sources: [], unknown: r.unknown };
      if (r === 'pass') sources.add(candidate);
    }
  }
  return { anyone: false, sources: [...sources].sort() };
}

/** moat's chains as it is about to write them. */
export function desiredView(d: DesiredFamily): RuleView {
  const hooked = d.chains.length > 0;
  return {
    chains: new Map(d.chains.map((c) => [c.name, c.rules.map((r) => r.spec)] as const)),
    hooked: { forward: hooked, input: hooked },
  };
}

/** moat's chains as the host holds them, and whether the host still jumps to them. */
export function liveView(ruleset: LiveRuleset): RuleView {
  const chains = new Map<string, readonly string[]>();
  let forward = false;
  let input = false;
  for (const chain of ruleset.tables.get('filter')?.chains.values() ?? []) {
    if (isOwnedChain(chain.name))
      chains.set(
        chain.name,
        chain.rules.map((r) => r.spec),
      );
    else {
      forward ||= chain.rules.some((r) => r.target === FORWARD_CHAIN);
      input ||= chain.name === 'INPUT' && chain.rules.some((r) => r.target === INPUT_CHAIN);
    }
  }
  return { chains, hooked: { forward, input } };
}

export function sameReach(a: Reach | undefined, b: Reach | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}
