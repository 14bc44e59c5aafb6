/**
 * The path of one new connection through the host, hook by hook, as the kernel takes it:
 *
 *   from the wire:  raw PREROUTING → conntrack → mangle PREROUTING → nat PREROUTING (DNAT)
 *                   → routing: local → mangle/filter/security INPUT → a listening socket
 *                                      (docker-proxy: a second connection from the host)
 *                              else  → mangle/filter/security FORWARD → mangle/nat POSTROUTING
 *                                      → a container on a Docker bridge, or out of the host
 *   from the host:  raw/mangle/nat/filter/security OUTPUT → routing → mangle/nat POSTROUTING
 *                   → out, or over loopback: raw/mangle PREROUTING → INPUT → a socket
 *   bridged:        a container to a neighbour on its own bridge crosses iptables only with
 *                   br_netfilter: PREROUTING → FORWARD (in and out the bridge) → POSTROUTING
 *
 * then the first reply (SYN-ACK) back the same way with conntrack's ESTABLISHED/REPLY state and
 * the NAT undone, since a connection whose answers are dropped does not open either. Pure.
 */
import type { Family } from '../policy/model.js';
import { contains, formatAddress, parseAddress, parsePrefix, type Address } from './address.js';
import type { Decider } from './explore.js';
import type { HostView, RouteAnswer } from './host-view.js';
import type { ListeningSocket, Protocol, TrailStep, Unmodelled, Verdict } from './model.js';
import { NeighbourDiscovery, type Blocked } from './neighbours.js';
import { Connection, formatEndpoint, Packet, SYN, SYN_ACK, type Hook } from './packet.js';
import { Undecidable, Walk, type TableVerdict } from './traverse.js';

/** Where a connection starts. */
export type Start =
  /** A packet arriving on an interface (an outside client, or a container on its bridge). */
  | { readonly kind: 'wire'; readonly iif: string; readonly bridged?: boolean }
  /** A connection the host itself opens. */
  | { readonly kind: 'local' };

export interface ConnectionSpec {
  readonly family: Family;
  readonly protocol: Protocol;
  readonly src: Address;
  readonly dst: Address;
  readonly dport: number;
  readonly start: Start;
}

export interface WalkResult {
  readonly verdict: Verdict;
  readonly reason: string;
  readonly trail: readonly TrailStep[];
  readonly assumed: readonly Unmodelled[];
  readonly unknown?: Unmodelled;
}

type Arrival =
  | { readonly kind: 'local'; readonly packet: Packet }
  /**
   * `bridged`: switched between two containers, not routed; `unseen`: bridged without
   * br_netfilter, so no hook saw it (nor will its reply).
   */
  | {
      readonly kind: 'out';
      readonly packet: Packet;
      readonly oif: string;
      readonly bridged?: boolean;
      readonly unseen?: boolean;
    };

const TABLES: Readonly<Record<Hook, readonly string[]>> = {
  PREROUTING: ['raw', 'mangle', 'nat'],
  INPUT: ['mangle', 'filter', 'security', 'nat'],
  FORWARD: ['mangle', 'filter', 'security'],
  OUTPUT: ['raw', 'mangle', 'nat', 'filter', 'security'],
  POSTROUTING: ['mangle', 'nat'],
};

function isBlocked(value: object): value is Blocked {
  return 'blocked' in value;
}

function verdictText(verdict: TableVerdict, table: string, hook: Hook): string {
  const how = verdict.kind === 'reject' ? 'rejected' : 'dropped';
  if (verdict.kind !== 'accept' && verdict.rule !== undefined)
    return `${how} by ${verdict.rule.table} ${verdict.rule.chain} rule ${verdict.rule.position}`;
  return `${how} by the policy of ${table} ${hook}`;
}

class PathWalk {
  readonly walk: Walk;

  constructor(
    readonly view: HostView,
    decider: Decider,
  ) {
    this.walk = new Walk(view, decider);
  }

  private readonly neighbours = new NeighbourDiscovery(this);

  note(text: string): void {
    this.walk.note(text);
  }

  /** Runs one hook's tables; conntrack attaches between raw and mangle. */
  hook(
    hook: Hook,
    packet: Packet,
    devices: { in?: string | undefined; out?: string | undefined },
    attach?: () => void,
  ): true | Blocked {
    packet.iif = devices.in;
    packet.oif = devices.out;
    for (const table of TABLES[hook]) {
      if (table === 'mangle' && attach !== undefined) attach();
      if (table === 'nat' && !this.natRuns(hook, packet)) continue;
      const verdict = this.walk.table(packet.family, table, hook, packet, hook);
      if (verdict.kind !== 'accept') return { blocked: verdictText(verdict, table, hook) };
    }
    return true;
  }

  /** The nat table sees only a connection's first packet, once per kind of manipulation. */
  private natRuns(hook: Hook, packet: Packet): boolean {
    const ct = packet.ct;
    if (ct === undefined || ct.dir !== 'ORIGINAL' || ct.state !== 'NEW') return false;
    const destination = hook === 'PREROUTING' || hook === 'OUTPUT';
    const done = destination ? ct.conn.natDestinationDone : ct.conn.natSourceDone;
    if (destination) ct.conn.natDestinationDone = true;
    else ct.conn.natSourceDone = true;
    return !done;
  }

  private attachNew(packet: Packet, protocol: Protocol): () => void {
    return () => {
      if (packet.untracked) return;
      packet.ct = { conn: new Connection(protocol, packet.tuple), dir: 'ORIGINAL', state: 'NEW' };
    };
  }

  private attachReply(packet: Packet, conn: Connection): () => void {
    return () => {
      if (!packet.untracked) packet.ct = { conn, dir: 'REPLY', state: 'ESTABLISHED' };
    };
  }

  // --- routing -------------------------------------------------------------------------------

  private forwarding(family: Family): void {
    const key = family === 'ipv4' ? 'net.ipv4.ip_forward' : 'net.ipv6.conf.all.forwarding';
    const read = this.view.sysctl(key);
    if (read === undefined)
      throw new Undecidable(
        `whether the host forwards ${family} packets (${key}) was not captured`,
      );
    if (read.value !== '1')
      throw new Blocking(
        `the host does not forward ${family} packets (${key} = ${read.value ?? 'absent'})`,
      );
  }

  private loopbackAllowed(packet: Packet): boolean {
    const loopback = parsePrefix(packet.family === 'ipv4' ? '127.0.0.0/8' : '::1/128');
    // Locally generated packets (no input interface yet) may go to loopback addresses.
    if (loopback === undefined || !contains(loopback, packet.dst)) return true;
    if (packet.iif === undefined || packet.iif === 'lo') return true;
    if (packet.family === 'ipv6') return false;
    const all = this.view.sysctl('net.ipv4.conf.all.route_localnet');
    const dev = this.view.sysctl(`net.ipv4.conf.${packet.iif}.route_localnet`);
    if (all === undefined || dev === undefined)
      throw new Undecidable(
        'a packet from outside to a loopback address: route_localnet was not captured',
      );
    return all.value === '1' || dev.value === '1';
  }

  /** Where routing sends a packet: here, out of an interface, or nowhere. */
  private route(packet: Packet): { local: true } | { oif: string; answer: RouteAnswer } | Blocked {
    if (!this.loopbackAllowed(packet))
      return {
        blocked: `dropped as martian: ${formatAddress(packet.dst)} is a loopback address (route_localnet off)`,
      };
    if (this.view.isLocal(packet.dst)) return { local: true };
    const answer = this.view.route(packet.dst);
    if (answer.kind === 'unknown') throw new Undecidable(answer.why);
    if (answer.kind === 'none') return { blocked: `no route to ${formatAddress(packet.dst)}` };
    const type = answer.route.type;
    if (type === 'blackhole' || type === 'unreachable' || type === 'prohibit')
      return { blocked: `the route to ${answer.route.dst} is of type ${type}` };
    if (type !== 'unicast' || answer.route.dev === undefined)
      throw new Undecidable(`a route of type ${type} to ${answer.route.dst} is not modelled`);
    return { oif: answer.route.dev, answer };
  }

  // --- the original direction ----------------------------------------------------------------

  fromWire(spec: ConnectionSpec, iif: string): Arrival | Blocked {
    const packet = new Packet(
      spec.family,
      spec.protocol,
      spec.src,
      spec.dst,
      'ephemeral',
      spec.dport,
      SYN,
      {},
    );
    this.note(`${packet.describe()} arrives on ${iif}`);
    if (
      spec.start.kind === 'wire' &&
      spec.start.bridged === true &&
      !this.bridgeFiltered(packet.family)
    ) {
      this.note(`bridged on ${iif} without br_netfilter: iptables does not see it`);
      return { kind: 'out', packet, oif: iif, unseen: true };
    }
    if (
      spec.start.kind === 'wire' &&
      spec.start.bridged !== true &&
      this.view.bridges.has(iif) &&
      packet.family === 'ipv6'
    ) {
      const resolved = this.neighbours.gatewayResolution(packet.src, iif);
      if (resolved !== true) return resolved;
    }
    const pre = this.hook('PREROUTING', packet, { in: iif }, this.attachNew(packet, spec.protocol));
    if (pre !== true) return pre;
    if (spec.start.kind === 'wire' && spec.start.bridged === true) return this.bridged(packet, iif);
    const route = this.route(packet);
    if (isBlocked(route)) return route;
    if ('local' in route) {
      this.note(`routing: ${formatAddress(packet.dst)} is an address of this host: INPUT`);
      const input = this.hook('INPUT', packet, { in: iif });
      return input === true ? { kind: 'local', packet } : input;
    }
    this.note(`routing: ${formatAddress(packet.dst)} goes out of ${route.oif}: FORWARD`);
    this.forwarding(packet.family);
    const forward = this.hook('FORWARD', packet, { in: iif, out: route.oif });
    if (forward !== true) return forward;
    const post = this.hook('POSTROUTING', packet, { out: route.oif });
    return post === true ? { kind: 'out', packet, oif: route.oif } : post;
  }

  /** Whether bridged packets of this family cross iptables (br_netfilter's sysctl). */
  private bridgeFiltered(family: Family): boolean {
    const key =
      family === 'ipv4'
        ? 'net.bridge.bridge-nf-call-iptables'
        : 'net.bridge.bridge-nf-call-ip6tables';
    const read = this.view.sysctl(key);
    if (read === undefined)
      throw new Undecidable(`bridged traffic: whether iptables sees it (${key}) was not captured`);
    return read.value === '1';
  }

  /** A container to a neighbour on its own bridge: iptables sees it only with br_netfilter. */
  private bridged(packet: Packet, bridge: string): Arrival | Blocked {
    this.note(`bridged on ${bridge} (br_netfilter): FORWARD in and out of ${bridge}`);
    const forward = this.hook('FORWARD', packet, { in: bridge, out: bridge });
    if (forward !== true) return forward;
    const post = this.hook('POSTROUTING', packet, { out: bridge });
    return post === true ? { kind: 'out', packet, oif: bridge, bridged: true } : post;
  }

  fromHost(spec: ConnectionSpec): Arrival | Blocked {
    const packet = new Packet(
      spec.family,
      spec.protocol,
      spec.src,
      spec.dst,
      'ephemeral',
      spec.dport,
      SYN,
      {},
    );
    this.note(`${packet.describe()} leaves a socket of the host`);
    let route = this.route(packet);
    if (isBlocked(route)) return route;
    const firstOut = 'local' in route ? 'lo' : route.oif;
    const dst = packet.dst;
    const out = this.hook(
      'OUTPUT',
      packet,
      { out: firstOut },
      this.attachNew(packet, spec.protocol),
    );
    if (out !== true) return out;
    if (packet.dst.value !== dst.value) {
      route = this.route(packet);
      if (isBlocked(route)) return route;
    }
    const oif = 'local' in route ? 'lo' : route.oif;
    this.note(
      `routing: ${formatAddress(packet.dst)} ${oif === 'lo' ? 'is local: over loopback' : `goes out of ${oif}`}`,
    );
    const post = this.hook('POSTROUTING', packet, { out: oif });
    if (post !== true) return post;
    if (oif !== 'lo') return { kind: 'out', packet, oif };
    const pre = this.hook('PREROUTING', packet, { in: 'lo' });
    if (pre !== true) return pre;
    const input = this.hook('INPUT', packet, { in: 'lo' });
    return input === true ? { kind: 'local', packet } : input;
  }

  // --- the reply -----------------------------------------------------------------------------

  /** The SYN-ACK from a remote end (a container, another host) arriving on `iif`. */
  replyFromWire(conn: Connection, iif: string): true | Blocked {
    const packet = replyPacket(conn);
    this.note(`reply ${packet.describe()} arrives on ${iif}`);
    const bridge = this.view.bridges.get(iif);
    if (bridge !== undefined && this.sameBridge(packet.dst, iif)) {
      return this.bridgedReply(packet, conn, iif);
    }
    const pre = this.hook('PREROUTING', packet, { in: iif }, this.attachReply(packet, conn));
    if (pre !== true) return pre;
    this.undoSnat(packet, conn);
    const route = this.route(packet);
    if (isBlocked(route)) return { blocked: `the reply: ${route.blocked}` };
    if ('local' in route) {
      const input = this.hook('INPUT', packet, { in: iif });
      if (input !== true) return { blocked: `the reply is ${input.blocked}` };
      this.undoDnat(packet, conn);
      return true;
    }
    this.forwarding(packet.family);
    const forward = this.hook('FORWARD', packet, { in: iif, out: route.oif });
    if (forward !== true) return { blocked: `the reply is ${forward.blocked}` };
    const post = this.hook('POSTROUTING', packet, { out: route.oif });
    if (post !== true) return { blocked: `the reply is ${post.blocked}` };
    this.undoDnat(packet, conn);
    return true;
  }

  /** Whether `address` sits on the bridge `bridge` itself (a neighbour, not via the host). */
  private sameBridge(address: Address, bridge: string): boolean {
    if (this.view.isLocal(address)) return false;
    const answer = this.view.route(address);
    return answer.kind === 'route' && answer.route.dev === bridge;
  }

  private bridgedReply(packet: Packet, conn: Connection, bridge: string): true | Blocked {
    if (!this.bridgeFiltered(packet.family)) {
      this.note(`the reply is bridged on ${bridge} without br_netfilter: iptables does not see it`);
      // The reply then keeps the NATed addresses: the client does not recognise it.
      if (conn.dnat || conn.snat)
        return {
          blocked:
            'the reply is bridged past the NAT (no br_netfilter), so the client never sees a matching answer',
        };
      return true;
    }
    this.note(`the reply is bridged on ${bridge} (br_netfilter)`);
    const pre = this.hook('PREROUTING', packet, { in: bridge }, this.attachReply(packet, conn));
    if (pre !== true) return { blocked: `the reply is ${pre.blocked}` };
    this.undoSnat(packet, conn);
    const forward = this.hook('FORWARD', packet, { in: bridge, out: bridge });
    if (forward !== true) return { blocked: `the reply is ${forward.blocked}` };
    const post = this.hook('POSTROUTING', packet, { out: bridge });
    if (post !== true) return { blocked: `the reply is ${post.blocked}` };
    this.undoDnat(packet, conn);
    return true;
  }

  /** The SYN-ACK from a socket of the host. */
  replyFromHost(conn: Connection): true | Blocked {
    const packet = replyPacket(conn);
    this.note(`reply ${packet.describe()} leaves the host's socket`);
    if (conn.snat) {
      packet.dst = conn.orig.src;
      packet.dport = conn.orig.sport;
    }
    const route = this.route(packet);
    if (isBlocked(route)) return { blocked: `the reply: ${route.blocked}` };
    const oif = 'local' in route ? 'lo' : route.oif;
    const out = this.hook('OUTPUT', packet, { out: oif }, this.attachReply(packet, conn));
    if (out !== true) return { blocked: `the reply is ${out.blocked}` };
    const post = this.hook('POSTROUTING', packet, { out: oif });
    if (post !== true) return { blocked: `the reply is ${post.blocked}` };
    this.undoDnat(packet, conn);
    if (oif !== 'lo') return true;
    const pre = this.hook('PREROUTING', packet, { in: 'lo' });
    if (pre !== true) return { blocked: `the reply is ${pre.blocked}` };
    const input = this.hook('INPUT', packet, { in: 'lo' });
    return input === true ? true : { blocked: `the reply is ${input.blocked}` };
  }

  private undoSnat(packet: Packet, conn: Connection): void {
    if (!conn.snat) return;
    packet.dst = conn.orig.src;
    packet.dport = conn.orig.sport;
  }

  private undoDnat(packet: Packet, conn: Connection): void {
    if (!conn.dnat) return;
    packet.src = conn.orig.dst;
    packet.sport = conn.orig.dport;
  }

  // --- arrival ----------------------------------------------------------------------------

  /** A socket of the host: docker-proxy opens a second connection, anything else answers. */
  atSocket(packet: Packet): { reached: string } | { proxy: ConnectionSpec; pid: number } | Blocked {
    const sockets = this.view.world.network.sockets;
    if (sockets === undefined)
      throw new Undecidable(
        'which ports the host listens on was not captured (a snapshot without sockets.txt)',
      );
    const port = packet.dport;
    if (packet.protocol === 'icmpv6') throw new Undecidable('an ICMPv6 packet at a socket');
    const socket = findSocket(
      sockets,
      packet.protocol,
      packet.dst,
      port === 'ephemeral' ? -1 : port,
      packet.iif,
    );
    const where = formatEndpoint(packet.dst, port);
    if (socket === undefined)
      return {
        blocked: `nothing listens on ${where}/${packet.protocol}: ${packet.protocol === 'tcp' ? 'connection refused' : 'port unreachable'}`,
      };
    // ss names a socket's owner to root only; docker-proxy or not decides the path.
    if (socket.process === undefined)
      throw new Undecidable(
        `which process listens on ${where} is not known (ss shows owners to root only)`,
      );
    const who = `${socket.process}${socket.pid === undefined ? '' : ` (pid ${socket.pid})`}`;
    if (socket.process !== 'docker-proxy')
      return { reached: `delivered to ${who} listening on ${where}` };
    const target = this.view.world.network.proxies?.find((p) => p.pid === socket.pid);
    if (target === undefined)
      throw new Undecidable(
        `docker-proxy (pid ${socket.pid ?? '?'}) listens on ${where}, but where it forwards to was not captured`,
      );
    const dst = parseAddress(target.containerIp);
    if (dst === undefined)
      throw new Undecidable(
        `docker-proxy forwards to ${target.containerIp}, which is not an address`,
      );
    const answer = this.view.route(dst);
    const src = this.view.sourceFor(dst, answer);
    if (src === undefined)
      return { blocked: `docker-proxy cannot reach ${target.containerIp}: no route` };
    this.note(
      `delivered to ${who} on ${where}; it connects to ${formatEndpoint(dst, target.containerPort)}`,
    );
    return {
      proxy: {
        family: dst.family,
        protocol: target.protocol,
        src,
        dst,
        dport: target.containerPort,
        start: { kind: 'local' },
      },
      pid: target.pid,
    };
  }

  /** Out of an interface: a container on a Docker bridge, or a host beyond. */
  atInterface(packet: Packet, oif: string, bridged: boolean): { reached: string } | Blocked {
    if (this.view.bridges.has(oif)) {
      const found = this.view.containerAt(packet.dst, oif);
      if (found === undefined)
        return { blocked: `no running container holds ${formatAddress(packet.dst)} on ${oif}` };
      if (packet.family === 'ipv6') {
        const resolved = bridged
          ? this.neighbours.neighbourResolves(packet.src, packet.dst, oif)
          : this.neighbours.hostResolves(packet.dst, oif, packet.src);
        if (resolved !== true) return resolved;
      }
      return {
        reached: `delivered to container ${found.container.name} at ${formatEndpoint(packet.dst, packet.dport)}`,
      };
    }
    return {
      reached: `leaves the host on ${oif} towards ${formatEndpoint(packet.dst, packet.dport)}`,
    };
  }
}

/** A packet that a fact (not a rule) stops, e.g. forwarding off. */
class Blocking extends Error {}

/** The most specific listening socket for a packet, as the kernel's socket lookup picks it. */
export function findSocket(
  sockets: readonly ListeningSocket[],
  protocol: Protocol,
  dst: Address,
  port: number,
  iif: string | undefined,
): ListeningSocket | undefined {
  const candidates = sockets.filter((s) => {
    if (s.protocol !== protocol || s.port !== port) return false;
    if (s.device !== undefined && s.device !== iif) return false;
    if (s.address === '*') return true;
    if (s.address === '0.0.0.0') return dst.family === 'ipv4';
    if (s.address === '::') return dst.family === 'ipv6';
    const bound = parseAddress(s.address);
    return bound !== undefined && bound.family === dst.family && bound.value === dst.value;
  });
  return candidates.find((s) => !['*', '0.0.0.0', '::'].includes(s.address)) ?? candidates[0];
}

/** One connection, end to end: the opening packet, its reply, and docker-proxy's own leg. */
export function walkConnection(view: HostView, spec: ConnectionSpec, decider: Decider): WalkResult {
  const path = new PathWalk(view, decider);
  const finish = (verdict: Verdict, reason: string, unknown?: Unmodelled): WalkResult => ({
    verdict,
    reason,
    trail: path.walk.trail,
    assumed: path.walk.assumed,
    ...(unknown === undefined ? {} : { unknown }),
  });
  try {
    const reason = connect(path, spec, 0);
    return isBlocked(reason)
      ? finish('blocked', reason.blocked)
      : finish('reachable', reason.reached);
  } catch (error) {
    if (error instanceof Blocking) return finish('blocked', error.message);
    if (error instanceof Undecidable)
      return finish(
        'unknown',
        error.why,
        error.rule === undefined ? { why: error.why } : { rule: error.rule, why: error.why },
      );
    throw error;
  }
}

function connect(
  path: PathWalk,
  spec: ConnectionSpec,
  depth: number,
): { reached: string } | Blocked {
  const arrival =
    spec.start.kind === 'local' ? path.fromHost(spec) : path.fromWire(spec, spec.start.iif);
  if (isBlocked(arrival)) return arrival;
  const conn = arrival.packet.ct?.conn;
  if (arrival.kind === 'out') {
    const there = path.atInterface(arrival.packet, arrival.oif, arrival.bridged === true);
    if (isBlocked(there) || arrival.unseen === true) return there;
    if (conn !== undefined) {
      const reply = path.replyFromWire(conn, arrival.oif);
      if (reply !== true) return reply;
    } else {
      path.walk.note('untracked: the reply is not followed');
    }
    return there;
  }
  const socket = path.atSocket(arrival.packet);
  if (isBlocked(socket)) return socket;
  if (conn !== undefined) {
    const reply = path.replyFromHost(conn);
    if (reply !== true) return reply;
  }
  if ('reached' in socket) return socket;
  if (depth > 2) throw new Undecidable('docker-proxy forwards to another docker-proxy, too deep');
  const leg = connect(path, socket.proxy, depth + 1);
  if (isBlocked(leg)) return { blocked: `docker-proxy's own connection: ${leg.blocked}` };
  return { reached: `through docker-proxy (pid ${socket.pid}): ${leg.reached}` };
}

/** The SYN-ACK of a connection, as its remote end sends it. */
function replyPacket(conn: Connection): Packet {
  const r = conn.reply;
  return new Packet(
    conn.orig.src.family,
    conn.protocol,
    r.src,
    r.dst,
    r.sport,
    r.dport,
    SYN_ACK,
    {},
  );
}
