/**
 * The live netfilter state as iptables-save and ipset save report it.
 * Other programs' rules are kept cheaply (position and text); moat's own are recognised by
 * their `moat:<id>` comment.
 */
import type { Family } from '../policy/model.js';
import type { NftRuleset } from './parse-nft.js';

export type TableName = 'filter' | 'nat' | 'mangle' | 'raw' | 'security';

export interface LiveRule {
  /** The rule after `-A <chain> ` exactly as iptables-save printed it (no counters). */
  readonly spec: string;
  /** The id from a `moat:<id>` comment, when the rule carries one. */
  readonly moatId?: string;
  /** The `-j`/`-g` target, when present. */
  readonly target?: string;
}

export interface LiveChain {
  readonly name: string;
  /** The policy of a built-in chain (`ACCEPT`, `DROP`); undefined for user chains (`-`). */
  readonly policy?: string;
  readonly rules: readonly LiveRule[];
}

export interface LiveTable {
  readonly name: string;
  /** Chains in the order iptables-save listed them. */
  readonly chains: ReadonlyMap<string, LiveChain>;
}

export interface LiveRuleset {
  readonly family: Family;
  readonly tables: ReadonlyMap<string, LiveTable>;
}

export interface LiveIpset {
  readonly name: string;
  /** `hash:ip`, `hash:net`, … */
  readonly type: string;
  readonly family: Family;
  /** The create line's options after the family (e.g. `hashsize 1024 maxelem 65536`), verbatim. */
  readonly options: string;
  /** Members as ipset save prints them, in its order. */
  readonly members: readonly string[];
  /** Members added with the `nomatch` option (hash:net exceptions), also in `members`. */
  readonly nomatch?: readonly string[];
}

export type IptablesBackend = 'nft' | 'legacy';

/** Everything moat reads from the kernel of one host. */
export interface LiveNetfilter {
  readonly backend: IptablesBackend;
  readonly rulesets: Readonly<Record<Family, LiveRuleset>>;
  readonly ipsets: ReadonlyMap<string, LiveIpset>;
  /**
   * nft's tables and base chains, where nft is installed (a live host's from `nft -j list
   * chains`, a snapshot's from its whole ruleset); a plan's state holds them only where Docker
   * uses its nftables backend. moat checks them, it never writes nft.
   */
  readonly nftables?: NftRuleset;
}
