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

function inRange(range: string, port: number): boolean {
  const [a, b] = range.split(':').map(Number);
  return a !== undefined && port >= a && port <= (b ?? a);
}

/** The outcome of one rule's matches for a packet from `source`. */
function ruleMatches(spec: string, packet: PathPacket, source: string): Test {
  const w = words(spec);
  const dnat = packet.path === 'dnat';
  const input = packet.path === 'proxy';
  for (let i = 0; i < w.length; i++) {
    let negate = false;
    if (w[i] === '!') {
      negate = true;
      i++;
    }
    const key = w[i];
    const value = w[i + 1] ?? '';
    let result: Test;
    switch (key) {
      case '-m':
        i++;
        continue;
      case '--comment':
        i++;
        continue;
      case '-j':
      case '-g':
        return true;
      case '-p':
        result = value === packet.protocol;
        i++;
        break;
      case '-s':
        result = withPrefix(value, packet.family) === source;
        i++;
        break;
      case '-d':
        result =
          packet.destination !== undefined &&
          withPrefix(value, packet.family) === withPrefix(packet.destination, packet.family);
        i++;
        break;
      case '-i':
        result = interfaceMatches(value, OUTSIDE_INTERFACE);
        i++;
        break;
      case '-o':
        result = !input && interfaceMatches(value, packet.outInterface);
        i++;
        break;
      case '--ctstate': {
        const states = value.split(',');
        result = states.includes('DNAT') ? dnat : states.includes('NEW');
        i++;
        break;
      }
      case '--ctdir':
        result = value === 'ORIGINAL';
        i++;
        break;
      case '--ctorigdstport':
        result = dnat && inRange(value, packet.port);
        i++;
        break;
      case '--ctorigdst':
        result =
          dnat &&
          packet.originalDestination !== undefined &&
          withPrefix(value, packet.family) ===
            withPrefix(packet.originalDestination, packet.family);
        if (dnat && packet.originalDestination === undefined) result = false;
        i++;
        break;
      case '--dport':
        result = inRange(value, dnat ? packet.containerPort : packet.port);
        i++;
        break;
      case '--match-set':
        result = w[i + 2] === 'src' ? `set:${value}` === source : 'unknown';
        i += 2;
        break;
      case '--limit':
      case '--limit-burst':
        // A rate limit only thins what a non-terminating rule (moat's NFLOG) sees.
        result = true;
        i++;
        break;
      default:
        return 'unknown';
    }
    if (result === 'unknown') return 'unknown';
    if (result === negate) return false;
  }
  return true;
}

function targetOf(spec: string): { kind: 'jump' | 'goto'; chain: string } | undefined {
  const m = / -([jg]) (\S+)\s*$/.exec(` ${spec}`);
  return m === null ? undefined : { kind: m[1] === 'g' ? 'goto' : 'jump', chain: m[2] ?? '' };
}

/** Walks a chain; `returns` says what falling off or RETURN means for the caller. */
function walk(
  view: RuleView,
  chain: string,
  packet: PathPacket,
  source: string,
  depth: number,
): Outcome | 'return' {
  if (depth > 16) return { unknown: `chains nested deeper than 16 at ${chain}` };
  for (const spec of view.chains.get(chain) ?? []) {
    const matched = ruleMatches(spec, packet, source);
    if (matched === 'unknown') return { unknown: `-A ${chain} ${spec}` };
    if (!matched) continue;
    const target = targetOf(spec);
    if (target === undefined) continue;
    if (target.chain === 'DROP' || target.chain === 'REJECT') return 'drop';
    if (target.chain === 'RETURN') return 'return';
    if (target.chain === 'ACCEPT') return 'pass';
    if (!view.chains.has(target.chain)) continue; // a non-terminating target (LOG, …)
    const inner = walk(view, target.chain, packet, source, depth + 1);
    if (inner !== 'return') return inner;
    if (target.kind === 'goto') return 'return';
  }
  return 'return';
}

function sourcesIn(view: RuleView): string[] {
  const out = new Set<string>();
  for (const specs of view.chains.values()) {
    for (const spec of specs) {
      const w = words(spec);
      w.forEach((word, i) => {
        if (word === '-s' && w[i - 1] !== '!') out.add(w[i + 1] ?? '');
        if (word === '--match-set' && w[i + 2] === 'src') out.add(`set:${w[i + 1] ?? ''}`);
      });
    }
  }
  return [...out].filter((s) => s !== '').sort();
}

/** Who passes moat's rules on one path. */
export function reachOn(view: RuleView, packet: PathPacket): Reach {
  const hooked = packet.path === 'proxy' ? view.hooked.input : view.hooked.forward;
  if (!hooked) return { anyone: true, sources: [] };
  const start = packet.path === 'proxy' ? INPUT_CHAIN : FORWARD_CHAIN;
  const candidates = sourcesIn(view).map((s) =>
    s.startsWith('set:') ? s : withPrefix(s, packet.family),
  );
  const outcome = (source: string): Outcome => {
    const r = walk(view, start, packet, source, 0);
    return r === 'return' ? 'pass' : r;
  };
  const other = outcome(ANYONE_ELSE);
  if (typeof other === 'object') return { anyone: false, sources: [], unknown: other.unknown };
  if (other === 'pass') return { anyone: true, sources: [] };
  const sources: string[] = [];
  for (const c of candidates) {
    const r = outcome(c);
    if (typeof r === 'object') return { anyone: false, sources: [], unknown: r.unknown };
    if (r === 'pass') sources.push(c);
  }
  return { anyone: false, sources: [...new Set(sources)].sort() };
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
