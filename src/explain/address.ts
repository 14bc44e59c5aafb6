/**
 * Addresses and prefixes as numbers, for matching packets against rules, routes and sets.
 * Parsing and printing go through ipaddr.js; containment and "an address outside these
 * prefixes" are arithmetic on bigints. Pure.
 */
// A static import, so the bundler puts ipaddr.js into dist/bundle (see src/policy/address.ts):
// the installed package has no node_modules to load it from.
import ipaddr from 'ipaddr.js';
import type { Family } from '../policy/model.js';

export interface Address {
  readonly family: Family;
  readonly value: bigint;
}

/** A block of addresses: `network & mask`. Masks need not be contiguous (`/255.0.255.0`). */
export interface Prefix {
  readonly family: Family;
  readonly network: bigint;
  readonly mask: bigint;
}

export const BITS: Readonly<Record<Family, number>> = { ipv4: 32, ipv6: 128 };

function allOnes(family: Family): bigint {
  return (1n << BigInt(BITS[family])) - 1n;
}

function fromBytes(bytes: readonly number[]): bigint {
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return value;
}

/** An IPv4 or IPv6 address; undefined when the text is not one. */
export function parseAddress(text: string): Address | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
    return { family: 'ipv4', value: fromBytes(ipaddr.IPv4.parse(text).toByteArray()) };
  }
  if (text.includes(':') && !text.includes('%') && ipaddr.IPv6.isValid(text)) {
    return { family: 'ipv6', value: fromBytes(ipaddr.IPv6.parse(text).toByteArray()) };
  }
  return undefined;
}

export function formatAddress(address: Address): string {
  const bytes: number[] = [];
  const count = BITS[address.family] / 8;
  for (let i = count - 1; i >= 0; i--) bytes.push(Number((address.value >> BigInt(i * 8)) & 0xffn));
  return ipaddr.fromByteArray(bytes).toString();
}

export function prefixMask(family: Family, length: number): bigint {
  const bits = BITS[family];
  if (length <= 0) return 0n;
  return (allOnes(family) >> BigInt(bits - length)) << BigInt(bits - length);
}

/** `10.0.0.0/8`, `10.1.2.3` (a host), `fd00::/64`, `10.0.0.0/255.0.255.0`. */
export function parsePrefix(text: string): Prefix | undefined {
  const slash = text.indexOf('/');
  const address = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (address === undefined) return undefined;
  const family = address.family;
  let mask: bigint;
  if (slash < 0) mask = allOnes(family);
  else {
    const rest = text.slice(slash + 1);
    if (/^\d{1,3}$/.test(rest)) {
      const length = Number(rest);
      if (length > BITS[family]) return undefined;
      mask = prefixMask(family, length);
    } else {
      const asMask = parseAddress(rest);
      if (asMask === undefined || asMask.family !== family) return undefined;
      mask = asMask.value;
    }
  }
  return { family, network: address.value & mask, mask };
}

export function prefixOf(address: Address, length: number): Prefix {
  const mask = prefixMask(address.family, length);
  return { family: address.family, network: address.value & mask, mask };
}

export function hostPrefix(address: Address): Prefix {
  return { family: address.family, network: address.value, mask: allOnes(address.family) };
}

export function contains(prefix: Prefix, address: Address): boolean {
  return prefix.family === address.family && (address.value & prefix.mask) === prefix.network;
}

/** The prefix length of a contiguous mask; undefined for a mask with holes. */
export function prefixLength(prefix: Prefix): number | undefined {
  const bits = BITS[prefix.family];
  for (let length = 0; length <= bits; length++) {
    if (prefixMask(prefix.family, length) === prefix.mask) return length;
  }
  return undefined;
}

export function formatPrefix(prefix: Prefix): string {
  const length = prefixLength(prefix);
  const network = formatAddress({ family: prefix.family, value: prefix.network });
  if (length === undefined)
    return `${network}/${formatAddress({ family: prefix.family, value: prefix.mask })}`;
  return `${network}/${length}`;
}

/** Whether every address of `inner` is in `outer` (contiguous masks). */
export function covers(outer: Prefix, inner: Prefix): boolean {
  return (
    outer.family === inner.family &&
    (outer.mask & inner.mask) === outer.mask &&
    (inner.network & outer.mask) === outer.network
  );
}

/** Whether two prefixes share an address (contiguous masks). */
export function overlaps(a: Prefix, b: Prefix): boolean {
  return covers(a, b) || covers(b, a);
}

/**
 * An address in `within` that none of `avoid` contains, or undefined when they cover it all.
 * Splits `within` in halves until a half touches no avoided prefix, and takes its second
 * address (not the network's all-zero one). A mask with holes in `avoid` counts as the
 * contiguous prefix of its leading ones, so more is avoided, never less.
 */
export function addressOutside(within: Prefix, avoid: readonly Prefix[]): Address | undefined {
  const family = within.family;
  const bits = BITS[family];
  const start = prefixLength(within);
  if (start === undefined) return undefined;
  const blocks = avoid
    .filter((p) => p.family === family)
    .map((p) => {
      let length = 0;
      while (length < bits && ((p.mask >> BigInt(bits - 1 - length)) & 1n) === 1n) length++;
      return prefixOf({ family, value: p.network }, length);
    });
  const search = (network: bigint, length: number): Address | undefined => {
    const here = prefixOf({ family, value: network }, length);
    const touching = blocks.filter((b) => overlaps(b, here));
    if (touching.length === 0) return { family, value: length < bits ? network + 1n : network };
    if (touching.some((b) => covers(b, here)) || length >= bits) return undefined;
    const half = 1n << BigInt(bits - length - 1);
    return search(network, length + 1) ?? search(network | half, length + 1);
  };
  return search(within.network, start);
}

export function sameAddress(a: Address, b: Address): boolean {
  return a.family === b.family && a.value === b.value;
}
