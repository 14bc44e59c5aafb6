/**
 * Addresses and CIDR blocks as the user writes them → the canonical form iptables and ipset
 * print back, so a later diff compares equal strings. Pure.
 */
// A static import, so the bundler puts ipaddr.js into dist/bundle: the installed package has no
// node_modules to load it from at run time. ipaddr.js is CommonJS (`module.exports = ipaddr`);
// Node.js and esbuild give that object as the default export (allowSyntheticDefaultImports).
import ipaddr from 'ipaddr.js';
import type { Cidr, Family } from './model.js';
type IPv4 = ReturnType<typeof ipaddr.IPv4.parse>;
type IPv6 = ReturnType<typeof ipaddr.IPv6.parse>;

export type CidrResult =
  | { readonly ok: true; readonly block: Cidr; readonly prefix: number; readonly address: string }
  | { readonly ok: false; readonly message: string; readonly code: string };

const MAX_PREFIX: Record<Family, number> = { ipv4: 32, ipv6: 128 };

/**
 * Parse `ADDRESS` or `ADDRESS/PREFIX`. A bare address becomes /32 or /128. Host bits set in a
 * block (`10.0.5.1/24`) are an error that suggests the network: the writer may have meant the
 * single host, so moat does not guess.
 */
export function parseCidr(text: string): CidrResult {
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
  let family: Family;
  let parsed: IPv4 | IPv6;
  if (ipaddr.IPv4.isValidFourPartDecimal(addressText)) {
    family = 'ipv4';
    parsed = ipaddr.IPv4.parse(addressText);
  } else if (
    addressText.includes(':') &&
    !addressText.includes('%') &&
    ipaddr.IPv6.isValid(addressText)
  ) {
    family = 'ipv6';
    const v6 = ipaddr.IPv6.parse(addressText);
    if (v6.isIPv4MappedAddress()) {
      return {
        ok: false,
        code: 'bad-address',
        message: `\`${text}\` is an IPv4-mapped IPv6 address; write the IPv4 address \`${v6.toIPv4Address().toString()}\` instead`,
      };
    }
    parsed = v6;
  } else {
    return {
      ok: false,
      code: 'bad-address',
      message: `\`${text}\` is not an IPv4 or IPv6 address or CIDR block`,
    };
  }
  const max = MAX_PREFIX[family];
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > max) {
      return {
        ok: false,
        code: 'bad-cidr',
        message: `\`${text}\`: the prefix length of an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} block must be 0 to ${max}`,
      };
    }
    prefix = Number(prefixText);
  }
  const address = parsed.toString();
  const network =
    family === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${address}/${prefix}`).toString()
      : ipaddr.IPv6.networkAddressFromCIDR(`${address}/${prefix}`).toString();
  if (network !== address) {
    return {
      ok: false,
      code: 'host-bits-set',
      message: `\`${text}\` has host bits set: write the network \`${network}/${prefix}\`, or the single address \`${address}\``,
    };
  }
  return { ok: true, block: { family, cidr: `${address}/${prefix}` }, prefix, address };
}

/** How ipset prints a member: a full-length block is printed as the bare address. */
export function ipsetMember(result: { prefix: number; address: string; block: Cidr }): string {
  return result.prefix === MAX_PREFIX[result.block.family] ? result.address : result.block.cidr;
}

export function familyLabel(family: Family): string {
  return family === 'ipv4' ? 'IPv4' : 'IPv6';
}

/** Order: IPv4 before IPv6, then by address bytes, then by prefix. */
export function compareMembers(a: string, b: string): number {
  const key = (m: string): [number[], number] => {
    const [addr = '', prefix] = m.split('/');
    const bytes = ipaddr.parse(addr).toByteArray();
    return [bytes, prefix === undefined ? 999 : Number(prefix)];
  };
  const [ab, ap] = key(a);
  const [bb, bp] = key(b);
  if (ab.length !== bb.length) return ab.length - bb.length;
  for (let i = 0; i < ab.length; i++) {
    const d = (ab[i] ?? 0) - (bb[i] ?? 0);
    if (d !== 0) return d;
  }
  return ap - bp;
}
