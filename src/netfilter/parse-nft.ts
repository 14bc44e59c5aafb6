/**
 * nft's JSON read into what moat checks: the tables, and the base chains with their hook and
 * policy. Pure. moat writes nothing with nft; it reads Docker's nftables backend (and anyone
 * else's nft tables) only to warn about what would undo Docker's accepts, and to name the tables
 * the packet-path evaluator does not model. Two listings carry that: `nft -j list ruleset` (what
 * a snapshot keeps) and `nft -j list chains`, which names no table but every chain's, and costs
 * milliseconds where the whole ruleset of a host with 50,000 iptables-nft rules takes seconds.
 */
import { MoatError } from '../core/errors.js';

export interface NftTable {
  /** `ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`. */
  readonly family: string;
  readonly name: string;
}

/** A chain attached to a netfilter hook: every packet at that hook passes every such chain. */
export interface NftBaseChain {
  readonly family: string;
  readonly table: string;
  readonly name: string;
  readonly hook: string;
  readonly priority: number;
  /** `accept` or `drop`. */
  readonly policy: string;
}

export interface NftRuleset {
  readonly tables: readonly NftTable[];
  readonly baseChains: readonly NftBaseChain[];
}

/** The tables Docker's nftables backend (29+) creates, one per family. */
export const DOCKER_NFT_TABLE = 'docker-bridges';

function unreadable(listing: string, what: string): MoatError {
  return new MoatError(`${listing}: ${what}`, { code: 'nft-parse', source: 'user' });
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

/**
 * The tables and base chains of `listing`'s JSON output (`nft -j list ruleset` or `nft -j list
 * chains`). A table is listed before its chains in the first; the second names a table only in
 * its chains, so a chain's table not yet seen is taken as a table too (in the order nft lists).
 */
export function parseNftJson(json: string, listing = 'nft -j list ruleset'): NftRuleset {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw unreadable(listing, 'not JSON');
  }
  const items = record(doc)?.nftables;
  if (!Array.isArray(items)) throw unreadable(listing, 'no "nftables" list');
  const tables: NftTable[] = [];
  const seen = new Set<string>();
  const addTable = (family: string, name: string): void => {
    const key = `${family} ${name}`;
    if (seen.has(key)) return;
    seen.add(key);
    tables.push({ family, name });
  };
  const baseChains: NftBaseChain[] = [];
  for (const item of items) {
    const table = record(record(item)?.table);
    if (table !== undefined) addTable(text(table.family), text(table.name));
    const chain = record(record(item)?.chain);
    if (chain !== undefined) addTable(text(chain.family), text(chain.table));
    // A regular chain has no hook: it runs only when jumped to.
    if (chain === undefined || typeof chain.hook !== 'string') continue;
    baseChains.push({
      family: text(chain.family),
      table: text(chain.table),
      name: text(chain.name),
      hook: chain.hook,
      priority: typeof chain.prio === 'number' ? chain.prio : 0,
      policy: text(chain.policy) || 'accept',
    });
  }
  return { tables, baseChains };
}
