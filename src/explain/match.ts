/**
 * Does a rule's matches hold for a packet? Three answers: yes, no, or "not modelled" with the
 * reason. The semantics follow the kernel's xt_* modules (conntrack, addrtype, set, mark, …) as
 * they behave for the first packets of a TCP or UDP connection. Pure.
 */
import type { LiveIpset } from '../netfilter/model.js';
import {
  optionOf,
  type ParsedRule,
  type RuleMatch,
  type RuleOption,
} from '../netfilter/parse-rule.js';
import {
  contains,
  parseAddress,
  parsePrefix,
  prefixLength,
  type Address,
  type Prefix,
} from './address.js';
import type { HostView } from './host-view.js';
import { EPHEMERAL_FIRST, EPHEMERAL_LAST, type Packet, type Port } from './packet.js';

/** Not modelled: the evaluator cannot tell, and says why. */
export interface Unsure {
  readonly unsure: string;
}
export type Tri = boolean | Unsure;

const unsure = (why: string): Unsure => ({ unsure: why });

export function isUnsure(value: Tri): value is Unsure {
  return typeof value === 'object';
}

/** Every condition must hold: a certain "no" wins over any "not modelled". */
function all(results: readonly Tri[]): Tri {
  let open: Unsure | undefined;
  for (const r of results) {
    if (r === false) return false;
    if (isUnsure(r)) open ??= r;
  }
  return open ?? true;
}

function negate(value: Tri, negated: boolean): Tri {
  return negated && !isUnsure(value) ? !value : value;
}

export interface MatchContext {
  readonly view: HostView;
  readonly table: string;
}

// --- ports -----------------------------------------------------------------------------------

interface PortRange {
  readonly first: number;
  readonly last: number;
}

function parsePortRange(text: string): PortRange | undefined {
  const m = /^(\d*)(?::(\d*))?$/.exec(text);
  if (m === null) return undefined;
  const first = m[1] === '' || m[1] === undefined ? 0 : Number(m[1]);
  const last = m[2] === undefined ? first : m[2] === '' ? 65535 : Number(m[2]);
  return first <= last && last <= 65535 ? { first, last } : undefined;
}

/** A port against ranges; the client's ephemeral port is in a range only if it covers them all. */
function portIn(port: Port, ranges: readonly PortRange[], what: string): Tri {
  if (port !== 'ephemeral') return ranges.some((r) => r.first <= port && port <= r.last);
  if (ranges.some((r) => r.first <= EPHEMERAL_FIRST && EPHEMERAL_LAST <= r.last)) return true;
  if (ranges.every((r) => r.last < EPHEMERAL_FIRST || r.first > EPHEMERAL_LAST)) return false;
  return unsure(`${what} tests the client's source port, which the client chooses`);
}

function portOption(option: RuleOption, port: Port, what: string, separator?: string): Tri {
  const texts = separator === undefined ? option.values : (option.values[0] ?? '').split(separator);
  const ranges = texts.map(parsePortRange);
  if (ranges.some((r) => r === undefined) || ranges.length === 0)
    return unsure(`cannot read the port ${option.values.join(' ')}`);
  return negate(portIn(port, ranges as PortRange[], what), option.negated);
}

// --- basic matches -----------------------------------------------------------------------------

const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = {
  tcp: 6,
  udp: 17,
  icmp: 1,
  'ipv6-icmp': 58,
  icmpv6: 58,
  icmp6: 58,
  sctp: 132,
  esp: 50,
  ah: 51,
  gre: 47,
  udplite: 136,
  dccp: 33,
  mh: 135,
  'ipv6-mh': 135,
};

function protocolMatches(value: string, protocol: string): Tri {
  const v = value.toLowerCase();
  if (v === 'all' || v === '0') return true;
  const wanted = /^\d+$/.test(v) ? Number(v) : PROTOCOL_NUMBERS[v];
  if (wanted === undefined) return unsure(`unknown protocol "${value}"`);
  return wanted === PROTOCOL_NUMBERS[protocol];
}

/** iptables interface names: exact, or a prefix ending in `+`. */
export function interfaceMatches(pattern: string, name: string | undefined): boolean {
  const actual = name ?? '';
  if (pattern.endsWith('+')) return actual.startsWith(pattern.slice(0, -1));
  return actual === pattern;
}

/** Rules are met again and again (replays, replies): their prefixes are parsed once. */
const prefixes = new Map<string, Prefix | undefined>();

function cachedPrefix(text: string): Prefix | undefined {
  if (prefixes.has(text)) return prefixes.get(text);
  if (prefixes.size > 100_000) prefixes.clear();
  const prefix = parsePrefix(text);
  prefixes.set(text, prefix);
  return prefix;
}

function addressOption(option: RuleOption, address: Address): Tri {
  const prefix = cachedPrefix(option.values[0] ?? '');
  if (prefix === undefined) return unsure(`cannot read the address ${option.values.join(' ')}`);
  return negate(contains(prefix, address), option.negated);
}

function basicMatch(option: RuleOption, packet: Packet): Tri {
  const value = option.values[0] ?? '';
  switch (option.name) {
    case '-s':
      return addressOption(option, packet.src);
    case '-d':
      return addressOption(option, packet.dst);
    case '-p':
      return negate(protocolMatches(value, packet.protocol), option.negated);
    case '-i':
      return negate(interfaceMatches(value, packet.iif), option.negated);
    case '-o':
      return negate(interfaceMatches(value, packet.oif), option.negated);
    case '-f':
      // The packets of a connection's start are never later fragments.
      return negate(false, option.negated);
    default:
      return unsure(`option ${option.name} is not modelled`);
  }
}

// --- modules -----------------------------------------------------------------------------------

const ICMPV6_TYPES: Readonly<Record<string, number>> = {
  'destination-unreachable': 1,
  'packet-too-big': 2,
  'time-exceeded': 3,
  'parameter-problem': 4,
  'echo-request': 128,
  'echo-reply': 129,
  'router-solicitation': 133,
  'router-advertisement': 134,
  'neighbour-solicitation': 135,
  'neighbor-solicitation': 135,
  'neighbour-advertisement': 136,
  'neighbor-advertisement': 136,
  redirect: 137,
};

/** `-m icmp6 --icmpv6-type TYPE[/CODE]` on a neighbour discovery packet (code 0). */
function icmpv6(match: RuleMatch, packet: Packet): Tri {
  if (packet.protocol !== 'icmpv6') return false;
  return all(
    match.options.map((o): Tri => {
      if (o.name !== '--icmpv6-type') return unsure(`-m ${match.module} ${o.name} is not modelled`);
      const [typeText = '', code] = (o.values[0] ?? '').split('/');
      const type = /^\d+$/.test(typeText) ? Number(typeText) : ICMPV6_TYPES[typeText];
      if (type === undefined) return unsure(`ICMPv6 type ${typeText} is not modelled`);
      return negate(type === packet.icmpType && (code === undefined || code === '0'), o.negated);
    }),
  );
}

/** Modules that only ever match packets of their own protocol. */
const PROTOCOL_MODULES = new Set([
  'icmp',
  'icmp6',
  'icmpv6',
  'sctp',
  'dccp',
  'esp',
  'ah',
  'udplite',
  'mh',
  'gre',
]);

function tcpUdp(match: RuleMatch, packet: Packet): Tri {
  if (match.module !== packet.protocol) return false;
  return all(
    match.options.map((o): Tri => {
      switch (o.name) {
        case '--sport':
        case '--source-port':
          return portOption(o, packet.sport, '--sport');
        case '--dport':
        case '--destination-port':
          return portOption(o, packet.dport, '--dport');
        case '--syn':
          return negate(tcpFlags(['FIN', 'SYN', 'RST', 'ACK'], ['SYN'], packet), o.negated);
        case '--tcp-flags': {
          const [mask, comp] = o.values;
          if (mask === undefined || comp === undefined) return unsure('cannot read --tcp-flags');
          return negate(tcpFlags(flagList(mask), flagList(comp), packet), o.negated);
        }
        default:
          return unsure(`-m ${match.module} ${o.name} is not modelled`);
      }
    }),
  );
}

function flagList(text: string): string[] {
  if (text === 'ALL') return ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'];
  if (text === 'NONE') return [];
  return text.split(',');
}

function tcpFlags(mask: readonly string[], comp: readonly string[], packet: Packet): boolean {
  return mask.every((flag) => packet.tcpFlags.has(flag) === comp.includes(flag));
}

function multiport(match: RuleMatch, packet: Packet): Tri {
  return all(
    match.options.map((o): Tri => {
      switch (o.name) {
        case '--sports':
        case '--source-ports':
          return portOption(o, packet.sport, '-m multiport --sports', ',');
        case '--dports':
        case '--destination-ports':
          return portOption(o, packet.dport, '-m multiport --dports', ',');
        case '--ports': {
          const s = portOption({ ...o, negated: false }, packet.sport, '-m multiport --ports', ',');
          const d = portOption({ ...o, negated: false }, packet.dport, '-m multiport --ports', ',');
          const either: Tri =
            s === true || d === true ? true : isUnsure(s) ? s : isUnsure(d) ? d : false;
          return negate(either, o.negated);
        }
        default:
          return unsure(`-m multiport ${o.name} is not modelled`);
      }
    }),
  );
}

// conntrack ---------------------------------------------------------------------------------

function stateBits(packet: Packet, withNat: boolean): Set<string> {
  const ct = packet.ct;
  if (ct === undefined) return new Set([packet.untracked ? 'UNTRACKED' : 'INVALID']);
  const bits = new Set<string>([ct.state]);
  if (withNat && ct.conn.snat) bits.add('SNAT');
  if (withNat && ct.conn.dnat) bits.add('DNAT');
  return bits;
}

function stateOption(option: RuleOption, packet: Packet, withNat: boolean): Tri {
  const bits = stateBits(packet, withNat);
  const wanted = (option.values[0] ?? '').split(',');
  return negate(
    wanted.some((w) => bits.has(w.toUpperCase())),
    option.negated,
  );
}

const STATUS_BITS: Readonly<Record<string, number>> = {
  NONE: 0,
  EXPECTED: 1,
  SEEN_REPLY: 2,
  ASSURED: 4,
  CONFIRMED: 8,
};

function conntrack(match: RuleMatch, packet: Packet): Tri {
  const state = optionOf(match.options, '--ctstate');
  const stateResult = state === undefined ? true : stateOption(state, packet, true);
  if (stateResult === false) return false;
  const ct = packet.ct;
  // xt_conntrack: with no entry (before conntrack, or untracked), only --ctstate can match.
  if (ct === undefined) return state === undefined ? false : stateResult;
  const conn = ct.conn;
  const status =
    ct.dir === 'REPLY' ? (STATUS_BITS.SEEN_REPLY ?? 0) | (STATUS_BITS.CONFIRMED ?? 0) : 0;
  const results = match.options.map((o): Tri => {
    const value = o.values[0] ?? '';
    switch (o.name) {
      case '--ctstate':
        return stateResult;
      case '--ctproto':
        return negate(protocolMatches(value, conn.protocol), o.negated);
      case '--ctorigsrc':
        return addressOption(o, conn.orig.src);
      case '--ctorigdst':
        return addressOption(o, conn.orig.dst);
      case '--ctreplsrc':
        return addressOption(o, conn.reply.src);
      case '--ctrepldst':
        return addressOption(o, conn.reply.dst);
      case '--ctorigsrcport':
        return portOption(o, conn.orig.sport, '--ctorigsrcport');
      case '--ctorigdstport':
        return portOption(o, conn.orig.dport, '--ctorigdstport');
      case '--ctreplsrcport':
        return portOption(o, conn.reply.sport, '--ctreplsrcport');
      case '--ctrepldstport':
        return portOption(o, conn.reply.dport, '--ctrepldstport');
      case '--ctdir':
        return negate(value.toUpperCase() === ct.dir, o.negated);
      case '--ctstatus': {
        const mask = value
          .split(',')
          .reduce((m, name) => m | (STATUS_BITS[name.toUpperCase()] ?? 0), 0);
        return negate((mask & status) !== 0, o.negated);
      }
      default:
        return unsure(`-m conntrack ${o.name} is not modelled`);
    }
  });
  return all(results);
}

// addrtype ------------------------------------------------------------------------------------

const V4_MULTICAST = parsePrefix('224.0.0.0/4') as Prefix;
const V6_MULTICAST = parsePrefix('ff00::/8') as Prefix;

/** The one type the IPv4 local routing table gives an address (what xt_addrtype looks up). */
function typeV4(view: HostView, address: Address, dev: string | undefined): string {
  if (view.isBroadcast(address)) return 'BROADCAST';
  if (contains(V4_MULTICAST, address)) return 'MULTICAST';
  if (view.isLocal(address)) {
    if (dev === undefined || view.localDevice(address) === dev) return 'LOCAL';
    return 'UNICAST';
  }
  return 'UNICAST';
}

function typeV6(view: HostView, address: Address, wanted: readonly string[]): Tri {
  if (wanted.length !== 1) return unsure('-m addrtype with several IPv6 types is not modelled');
  const type = wanted[0];
  const multicast = contains(V6_MULTICAST, address);
  switch (type) {
    case 'MULTICAST':
      return multicast;
    case 'UNICAST':
      return !multicast && address.value !== 0n;
    case 'UNSPEC':
      return address.value === 0n;
    case 'LOCAL':
      return view.isLocal(address);
    case 'UNREACHABLE': {
      if (multicast) return false;
      const route = view.route(address);
      if (route.kind === 'unknown') return unsure(route.why);
      return (
        route.kind === 'none' || ['unreachable', 'prohibit', 'blackhole'].includes(route.route.type)
      );
    }
    default:
      return unsure(`-m addrtype type ${type ?? ''} is not modelled for IPv6`);
  }
}

function addrtype(match: RuleMatch, packet: Packet, view: HostView): Tri {
  const limitIn = optionOf(match.options, '--limit-iface-in') !== undefined;
  const limitOut = optionOf(match.options, '--limit-iface-out') !== undefined;
  const dev = limitIn ? packet.iif : limitOut ? packet.oif : undefined;
  return all(
    match.options.map((o): Tri => {
      if (o.name === '--limit-iface-in' || o.name === '--limit-iface-out') return true;
      if (o.name !== '--src-type' && o.name !== '--dst-type')
        return unsure(`-m addrtype ${o.name} is not modelled`);
      const address = o.name === '--src-type' ? packet.src : packet.dst;
      const wanted = (o.values[0] ?? '').split(',').map((t) => t.toUpperCase());
      if (address.family === 'ipv6') {
        if (dev !== undefined)
          return unsure('-m addrtype --limit-iface-* is not modelled for IPv6');
        return negate(typeV6(view, address, wanted), o.negated);
      }
      return negate(wanted.includes(typeV4(view, address, dev)), o.negated);
    }),
  );
}

// set -----------------------------------------------------------------------------------------

function netmaskOf(set: LiveIpset): number | undefined {
  const m = /(?:^| )netmask (\d+)/.exec(set.options);
  return m === null ? undefined : Number(m[1]);
}

/** Whether a one-dimensional address set holds `address`. */
export function setHolds(set: LiveIpset, address: Address): Tri {
  if (set.family !== address.family) return false;
  if (set.type === 'hash:ip') {
    const netmask = netmaskOf(set);
    return set.members.some((m) => {
      const prefix = parsePrefix(netmask === undefined ? m : `${m}/${netmask}`);
      return prefix !== undefined && contains(prefix, address);
    });
  }
  if (set.type === 'hash:net') {
    // The most specific entry decides; a `nomatch` entry says "not in the set".
    let best: { length: number; nomatch: boolean } | undefined;
    const consider = (text: string, nomatch: boolean): void => {
      const prefix = parsePrefix(text);
      if (prefix === undefined || !contains(prefix, address)) return;
      const length = prefixLength(prefix) ?? 0;
      if (best === undefined || length > best.length) best = { length, nomatch };
    };
    const nomatch = new Set(set.nomatch ?? []);
    for (const m of set.members) consider(m, nomatch.has(m));
    return best !== undefined && !best.nomatch;
  }
  return unsure(`ipset ${set.name} is of type ${set.type}, which is not modelled`);
}

function setMatch(match: RuleMatch, packet: Packet, view: HostView): Tri {
  return all(
    match.options.map((o): Tri => {
      switch (o.name) {
        case '--match-set':
        case '--set': {
          const [name, flags] = o.values;
          if (name === undefined || flags === undefined) return unsure('cannot read --match-set');
          const set = view.ipset(name);
          if (set === undefined)
            return unsure(`ipset ${name} is not in what was read from the host`);
          const first = flags.split(',')[0];
          const address = first === 'src' ? packet.src : packet.dst;
          return negate(setHolds(set, address), o.negated);
        }
        case '--return-nomatch':
        case '--update-counters':
        case '--update-subcounters':
          return true;
        default:
          return unsure(`-m set ${o.name} is not modelled`);
      }
    }),
  );
}

// marks, ranges, packet type ---------------------------------------------------------------------

export function parseMark(text: string): { value: number; mask: number } | undefined {
  const [v, m] = text.split('/');
  const value = Number(v);
  const mask = m === undefined ? 0xffffffff : Number(m);
  if (!Number.isInteger(value) || !Number.isInteger(mask)) return undefined;
  return { value: value >>> 0, mask: mask >>> 0 };
}

function markOption(option: RuleOption, mark: number): Tri {
  const parsed = parseMark(option.values[0] ?? '');
  if (parsed === undefined) return unsure(`cannot read the mark ${option.values.join(' ')}`);
  return negate((mark & parsed.mask) >>> 0 === parsed.value, option.negated);
}

function inRange(text: string, address: Address): Tri {
  const [a, b] = text.split('-');
  const first = parseAddress(a ?? '');
  const last = parseAddress(b ?? a ?? '');
  if (first === undefined || last === undefined) return unsure(`cannot read the range ${text}`);
  return (
    first.family === address.family && first.value <= address.value && address.value <= last.value
  );
}

function moduleMatch(match: RuleMatch, packet: Packet, ctx: MatchContext): Tri {
  const view = ctx.view;
  switch (match.module) {
    case 'tcp':
    case 'udp':
      return tcpUdp(match, packet);
    case 'icmp6':
    case 'icmpv6':
    case 'ipv6-icmp':
      return icmpv6(match, packet);
    case 'multiport':
      return multiport(match, packet);
    case 'conntrack':
      return conntrack(match, packet);
    case 'state':
      return all(
        match.options.map((o) =>
          o.name === '--state'
            ? stateOption(o, packet, false)
            : unsure(`-m state ${o.name} is not modelled`),
        ),
      );
    case 'addrtype':
      return addrtype(match, packet, view);
    case 'set':
      return setMatch(match, packet, view);
    case 'comment':
      return true;
    case 'mark':
      return all(
        match.options.map((o) =>
          o.name === '--mark' ? markOption(o, packet.mark) : unsure(`-m mark ${o.name}`),
        ),
      );
    case 'connmark':
      // xt_connmark: no conntrack entry, no match (negated or not).
      if (packet.ct === undefined) return false;
      return all(
        match.options.map((o) =>
          o.name === '--mark'
            ? markOption(o, packet.ct?.conn.mark ?? 0)
            : unsure(`-m connmark ${o.name}`),
        ),
      );
    case 'iprange':
      return all(
        match.options.map((o): Tri => {
          if (o.name === '--src-range')
            return negate(inRange(o.values[0] ?? '', packet.src), o.negated);
          if (o.name === '--dst-range')
            return negate(inRange(o.values[0] ?? '', packet.dst), o.negated);
          return unsure(`-m iprange ${o.name} is not modelled`);
        }),
      );
    case 'pkttype':
      return all(
        match.options.map((o): Tri => {
          if (o.name !== '--pkt-type') return unsure(`-m pkttype ${o.name} is not modelled`);
          const type = view.isBroadcast(packet.dst)
            ? 'broadcast'
            : contains(packet.family === 'ipv4' ? V4_MULTICAST : V6_MULTICAST, packet.dst)
              ? 'multicast'
              : 'unicast';
          const wanted = (o.values[0] ?? '').toLowerCase();
          return negate(wanted === type || (wanted === 'host' && type === 'unicast'), o.negated);
        }),
      );
    default:
      if (PROTOCOL_MODULES.has(match.module)) return false;
      return unsure(`match -m ${match.module} is not modelled`);
  }
}

/** Whether every match of a rule holds for the packet. */
export function ruleMatches(rule: ParsedRule, packet: Packet, ctx: MatchContext): Tri {
  // A certain "no" settles it: the cheap basic matches first, then each module in turn.
  let open: Unsure | undefined;
  for (const option of rule.basic) {
    const r = basicMatch(option, packet);
    if (r === false) return false;
    if (r !== true) open ??= r;
  }
  for (const match of rule.matches) {
    const r = moduleMatch(match, packet, ctx);
    if (r === false) return false;
    if (r !== true) open ??= r;
  }
  return open ?? true;
}
