/**
 * A packet on its way through the hooks, and the connection-tracking entry it belongs to.
 * Mutable by design: NAT, marks and conntrack change them as the walk goes. Pure.
 */
import type { Family } from '../policy/model.js';
import { formatAddress, type Address } from './address.js';
import type { Protocol } from './model.js';

/**
 * A client's source port is chosen by its operating system: anything from 1024 to 65535.
 * A rule testing it matches for sure only if it covers that whole range.
 */
export type Port = number | 'ephemeral';
export const EPHEMERAL_FIRST = 1024;
export const EPHEMERAL_LAST = 65535;

export interface Tuple {
  readonly src: Address;
  readonly dst: Address;
  readonly sport: Port;
  readonly dport: Port;
}

export function invert(t: Tuple): Tuple {
  return { src: t.dst, dst: t.src, sport: t.dport, dport: t.sport };
}

export function formatPort(port: Port): string {
  return port === 'ephemeral' ? '*' : String(port);
}

export function formatEndpoint(address: Address, port: Port): string {
  const host = formatAddress(address);
  return address.family === 'ipv6'
    ? `[${host}]:${formatPort(port)}`
    : `${host}:${formatPort(port)}`;
}

/** A conntrack entry: the original tuple, the reply tuple NAT shaped, its mark and NAT bits. */
export class Connection {
  /** What the reply will look like on the wire (source: the post-DNAT destination, …). */
  reply: Tuple;
  dnat = false;
  snat = false;
  mark = 0;
  /** The nat table runs once per connection and direction of manipulation. */
  natDestinationDone = false;
  natSourceDone = false;

  constructor(
    readonly protocol: Protocol,
    readonly orig: Tuple,
  ) {
    this.reply = invert(orig);
  }
}

export type Direction = 'ORIGINAL' | 'REPLY';

export interface ConntrackView {
  readonly conn: Connection;
  readonly dir: Direction;
  readonly state: 'NEW' | 'ESTABLISHED';
}

export type Hook = 'PREROUTING' | 'INPUT' | 'FORWARD' | 'OUTPUT' | 'POSTROUTING';

/** Connections are TCP or UDP; IPv6 neighbour discovery adds ICMPv6 packets. */
export type PacketProtocol = Protocol | 'icmpv6';

export class Packet {
  iif: string | undefined;
  oif: string | undefined;
  mark = 0;
  /** Attached by conntrack after the raw table; undefined before it, and when untracked. */
  ct: ConntrackView | undefined;
  untracked = false;
  /** The ICMPv6 type of a neighbour discovery packet. */
  icmpType: number | undefined;

  constructor(
    readonly family: Family,
    readonly protocol: PacketProtocol,
    public src: Address,
    public dst: Address,
    public sport: Port,
    public dport: Port,
    /** TCP flags of this packet: the opening SYN, or the SYN-ACK answering it. */
    readonly tcpFlags: ReadonlySet<string>,
    options: { iif?: string; oif?: string } = {},
  ) {
    this.iif = options.iif;
    this.oif = options.oif;
  }

  get tuple(): Tuple {
    return { src: this.src, dst: this.dst, sport: this.sport, dport: this.dport };
  }

  describe(): string {
    if (this.protocol === 'icmpv6')
      return `${formatAddress(this.src)} → ${formatAddress(this.dst)} ICMPv6 type ${this.icmpType ?? '?'}`;
    return `${formatEndpoint(this.src, this.sport)} → ${formatEndpoint(this.dst, this.dport)}/${this.protocol}`;
  }
}

export const SYN: ReadonlySet<string> = new Set(['SYN']);
export const SYN_ACK: ReadonlySet<string> = new Set(['SYN', 'ACK']);
