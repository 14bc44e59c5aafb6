/**
 * `nft -j list ruleset` read into what moat checks: the tables, and the base chains with their
 * hook and policy. Pure. moat writes nothing with nft; it reads Docker's nftables backend (and
 * anyone else's nft tables) only to warn about what would undo Docker's accepts.
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

function unreadable(what: string): MoatError {
  return new MoatError(`nft -j list ruleset: ${what}`, { code: 'nft-parse', source: 'user' });
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

export function parseNftJson(json: string): NftRuleset {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw unreadable('not JSON');
  }
  const items = record(doc)?.nftables;
  if (!Array.isArray(items)) throw unreadable('no "nftables" list');
  const tables: NftTable[] = [];
  const baseChains: NftBaseChain[] = [];
  for (const item of items) {
    const table = record(record(item)?.table);
    if (table !== undefined) tables.push({ family: text(table.family), name: text(table.name) });
    const chain = record(record(item)?.chain);
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
