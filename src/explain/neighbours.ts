/**
 * IPv6 neighbour discovery on Docker bridges. Before the first packet to a neighbour, IPv6
 * resolves its link-layer address: a solicitation (multicast) and an advertisement back.
 * Conntrack tracks neither (no entry: state INVALID), so rules keyed on a container's address
 * see them as that container's traffic. Walked from empty neighbour caches; when that exchange
 * fails but another one (from another source address, or the other way round) would fill the
 * cache, the outcome depends on earlier traffic and is unknown. ARP never crosses iptables.
 * Pure.
 */
import { contains, formatAddress, parsePrefix, type Address, type Prefix } from './address.js';
import type { HostView } from './host-view.js';
import { Packet, type Hook } from './packet.js';
import { Undecidable, type Walk } from './traverse.js';

export interface Blocked {
  readonly blocked: string;
}

type HookStep = readonly [Hook, { in?: string; out?: string }];

/** What discovery needs from the connection's walk: its hooks, notes and trail. */
export interface HookRunner {
  readonly view: HostView;
  readonly walk: Walk;
  hook(
    hook: Hook,
    packet: Packet,
    devices: { in?: string | undefined; out?: string | undefined },
  ): true | Blocked;
  note(text: string): void;
}

export class NeighbourDiscovery {
  constructor(private readonly path: HookRunner) {}

  private ndpPacket(type: 135 | 136, src: Address, dst: Address): Packet {
    const packet = new Packet('ipv6', 'icmpv6', src, dst, 0, 0, NO_FLAGS, {});
    packet.icmpType = type;
    return packet;
  }

  private hops(packet: Packet, hooks: readonly HookStep[]): true | Blocked {
    for (const [hook, devices] of hooks) {
      const passed = this.path.hook(hook, packet, devices);
      if (passed !== true) return passed;
    }
    return true;
  }

  /** Runs `exchange` for its verdict only: its rules stay out of the trail. */
  private quietly(exchange: () => true | Blocked): boolean {
    const mark = this.path.walk.trail.length;
    const passed = exchange();
    this.path.walk.trail.length = mark;
    return passed === true;
  }

  /** A solicitation from `asker` for `target`, then the advertisement back, each on its path. */
  private exchange(
    asker: Address,
    target: Address,
    ask: readonly HookStep[],
    answer: readonly HookStep[],
    who: string,
  ): true | Blocked {
    const asked = this.hops(this.ndpPacket(135, asker, solicitedNode(target)), ask);
    if (asked !== true) return { blocked: `${who}'s solicitation is ${asked.blocked}` };
    const answered = this.hops(this.ndpPacket(136, target, asker), answer);
    if (answered !== true)
      return { blocked: `${formatAddress(target)}'s advertisement is ${answered.blocked}` };
    return true;
  }

  private failed(cold: Blocked, warmable: boolean, how: string): Blocked {
    const why = `IPv6 neighbour discovery fails: ${cold.blocked}`;
    if (!warmable) return { blocked: why };
    throw new Undecidable(
      `${why}; but ${how} would fill the neighbour cache, so the outcome depends on earlier traffic`,
    );
  }

  /**
   * The host resolves `target` on `link`. Its solicitation comes from the packet's source when
   * that is an address of `link`, else from the link-local address (ndisc_solicit).
   */
  hostResolves(target: Address, link: string, trigger: Address): true | Blocked {
    const own = this.path.view.addressesOn(link, 'ipv6');
    const linkLocal = own.find((a) => isLinkLocal(a));
    const asker = own.some((a) => a.value === trigger.value) ? trigger : linkLocal;
    if (asker === undefined)
      throw new Undecidable(`the host's link-local address on ${link} is not known`);
    this.path.note(
      `IPv6 neighbour discovery: the host (${formatAddress(asker)}) asks for ${formatAddress(target)} on ${link}`,
    );
    const out: HookStep[] = [
      ['OUTPUT', { out: link }],
      ['POSTROUTING', { out: link }],
    ];
    const back: HookStep[] = [
      ['PREROUTING', { in: link }],
      ['INPUT', { in: link }],
    ];
    const cold = this.exchange(asker, target, out, back, 'the host');
    if (cold === true) return true;
    const others = own.filter((a) => a.value !== asker.value);
    const warmable =
      others.some((a) => this.quietly(() => this.exchange(a, target, out, back, 'the host'))) ||
      own.some((a) =>
        this.quietly(() => this.hops(this.ndpPacket(135, target, solicitedNode(a)), back)),
      );
    return this.failed(
      cold,
      warmable,
      `a solicitation from another address of the host, or from ${formatAddress(target)} itself,`,
    );
  }

  /** A container starting a routed connection first resolves its gateway (the host). */
  gatewayResolution(node: Address, link: string): true | Blocked {
    const gateway = this.path.view.interfaceAddress(link, 'ipv6');
    if (gateway === undefined) return { blocked: `${link} has no IPv6 address to route through` };
    this.path.note(
      `IPv6 neighbour discovery: ${formatAddress(node)} asks for its gateway ${formatAddress(gateway)} on ${link}`,
    );
    const into: HookStep[] = [
      ['PREROUTING', { in: link }],
      ['INPUT', { in: link }],
    ];
    const out: HookStep[] = [
      ['OUTPUT', { out: link }],
      ['POSTROUTING', { out: link }],
    ];
    const cold = this.exchange(node, gateway, into, out, formatAddress(node));
    if (cold === true) return true;
    const warmable = this.quietly(() =>
      this.hops(this.ndpPacket(135, gateway, solicitedNode(node)), out),
    );
    return this.failed(
      cold,
      warmable,
      `the host soliciting ${formatAddress(node)} from its gateway address`,
    );
  }

  /** A container resolves a neighbour on its bridge; both packets are bridged (br_netfilter). */
  neighbourResolves(node: Address, target: Address, link: string): true | Blocked {
    this.path.note(
      `IPv6 neighbour discovery: ${formatAddress(node)} asks for ${formatAddress(target)} on ${link}`,
    );
    const path: HookStep[] = [
      ['PREROUTING', { in: link }],
      ['FORWARD', { in: link, out: link }],
      ['POSTROUTING', { out: link }],
    ];
    const cold = this.exchange(node, target, path, path, formatAddress(node));
    if (cold === true) return true;
    const warmable = this.quietly(() =>
      this.hops(this.ndpPacket(135, target, solicitedNode(node)), path),
    );
    return this.failed(
      cold,
      warmable,
      `${formatAddress(target)} soliciting ${formatAddress(node)}`,
    );
  }
}

const NO_FLAGS: ReadonlySet<string> = new Set();

const LINK_LOCAL = parsePrefix('fe80::/10') as Prefix;

function isLinkLocal(address: Address): boolean {
  return contains(LINK_LOCAL, address);
}

/** The solicited-node multicast address of an IPv6 address: ff02::1:ffXX:XXXX. */
function solicitedNode(target: Address): Address {
  return {
    family: 'ipv6',
    value: 0xff0200000000000000000001ff000000n | (target.value & 0xffffffn),
  };
}
