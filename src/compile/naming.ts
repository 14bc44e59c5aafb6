/**
 * Names and ids of the objects moat compiles. Everything here is derived from content, so the
 * same policy and inventory always compile to the same names. What the prefixes are is said
 * once, in src/core/ownership.ts.
 */
import {
  EGRESS_GROUP_CHAIN_PREFIX,
  SOURCES_CHAIN_PREFIX,
  ruleId,
  shortHash,
  taggedRule,
} from '../core/ownership.js';
import type { Family } from '../policy/model.js';
import type { OwnedRule, RuleOrigin } from './model.js';

/** A chain of allowed sources for one or more published ports; shared by equal source lists. */
export function sourcesChainName(family: Family, sourcesKey: string): string {
  return `${SOURCES_CHAIN_PREFIX}${shortHash(`${family}|${sourcesKey}`, 10)}`;
}

/** The egress chain of one container group. */
export function egressChainName(group: string): string {
  return `${EGRESS_GROUP_CHAIN_PREFIX}${shortHash(group, 10)}`;
}

/** A rule moat writes, with the policy rules it came from. */
export function ownedRule(
  chain: string,
  spec: string,
  origins: readonly RuleOrigin[] = [],
): OwnedRule {
  const id = ruleId(chain, spec);
  return { chain, spec, id, line: taggedRule(id, spec), origins };
}
