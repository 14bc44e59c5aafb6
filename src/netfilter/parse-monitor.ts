/**
 * What a line of `xtables-monitor -e` or `nft monitor ruleset` output says was changed, so that
 * watch reads only those of moat's chains (or nothing, when Docker changed its own). Pure.
 *
 *    EVENT: -4 -t filter -A MOAT-FORWARD -p tcp … -j DROP       (xtables-monitor: a rule)
 *    EVENT: -6 -t filter -X MOAT-INPUT                          (a chain)
 *    EVENT: # nft: ip filter INPUT use 2 type filter hook …     (a base chain)
 *    EVENT: nft: DEL table: table filter ip flags 0 use 0 …    (a whole table)
 *   NEWGEN: GENID=8 PID=29558 NAME=nft                          (end of a transaction)
 *   delete rule ip filter MOAT-FORWARD handle 5                 (nft monitor)
 *   # new generation 9 by process 29407 (nft)
 *
 * A change in a family's filter table that names no chain (a table replaced) is that `family`;
 * anything not understood is `anything`: watch then reads all of moat's objects (of that family).
 */
import type { Family } from '../policy/model.js';

/** What a change notice says was touched. */
export type ChangeHint =
  | { readonly kind: 'chain'; readonly family: Family; readonly chain: string }
  /** Anything in one family's filter table. */
  | { readonly kind: 'family'; readonly family: Family }
  | { readonly kind: 'sets' }
  | { readonly kind: 'anything' };

export const ANYTHING: ChangeHint = { kind: 'anything' };

/** `hint` from a source that only tells of `family` (`xtables-monitor -6`): never wider. */
export function withinFamily(hint: ChangeHint | undefined, family: Family): ChangeHint | undefined {
  return hint?.kind === 'anything' ? { kind: 'family', family } : hint;
}

const FAMILY_FLAG: Readonly<Record<string, Family>> = { '-4': 'ipv4', '-6': 'ipv6' };
const NFT_FAMILY: Readonly<Record<string, Family>> = { ip: 'ipv4', ip6: 'ipv6' };

/** A chain of the filter table of `family`; undefined for other tables (moat uses filter only). */
function chainHint(
  family: Family | undefined,
  table: string,
  chain: string,
): ChangeHint | undefined {
  if (table !== 'filter') return undefined;
  return family === undefined ? ANYTHING : { kind: 'chain', family, chain };
}

/** One line of `xtables-monitor -e`; undefined: it tells of no change moat cares about. */
export function xtablesMonitorHint(line: string): ChangeHint | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('NEWGEN:')) return undefined;
  const rule = /^EVENT: (-4|-6) -t (\S+)(?: -[A-Z] (\S+))?/.exec(text);
  if (rule !== null) {
    if (rule[2] !== 'filter') return undefined;
    const family = FAMILY_FLAG[rule[1] ?? ''];
    const chain = rule[3];
    if (chain !== undefined) return chainHint(family, 'filter', chain);
    return family === undefined ? ANYTHING : { kind: 'family', family };
  }
  const base = /^EVENT: # nft: (\S+) (\S+) (\S+) /.exec(text);
  if (base !== null) {
    const family = NFT_FAMILY[base[1] ?? ''];
    return family === undefined ? undefined : chainHint(family, base[2] ?? '', base[3] ?? '');
  }
  const table = /^EVENT: nft: (?:NEW|DEL) table: table (\S+) (\S+) /.exec(text);
  if (table !== null) {
    const family = NFT_FAMILY[table[2] ?? ''];
    return family === undefined || table[1] !== 'filter' ? undefined : { kind: 'family', family };
  }
  return ANYTHING;
}

/** One line of `nft monitor ruleset`; undefined: it tells of no change moat cares about. */
export function nftMonitorHint(line: string): ChangeHint | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  const m =
    /^(?:add|insert|replace|delete|create) (rule|chain|table|set|element|map|flowtable|counter|quota|limit|ct \S+|secmark|synproxy) (\S+) (\S+)(?: (\S+))?/.exec(
      text,
    );
  if (m === null) return ANYTHING;
  const [, what, nftFamily, table, chain] = m;
  const family = NFT_FAMILY[nftFamily ?? ''];
  if (family === undefined || table !== 'filter') return undefined;
  if ((what === 'rule' || what === 'chain') && chain !== undefined) {
    return { kind: 'chain', family, chain };
  }
  return { kind: 'family', family };
}
