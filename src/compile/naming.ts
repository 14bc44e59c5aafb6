/**
 * Names and ids of the objects moat owns. Everything here is derived from content, so the
 * same policy and inventory always compile to the same names.
 */
import { createHash } from 'node:crypto';
import type { Family } from '../policy/model.js';
import type { OwnedRule } from './model.js';

export const CHAIN_PREFIX = 'MOAT-';
export const IPSET_PREFIX = 'moat-';
/** Routed traffic, jumped to from DOCKER-USER (or FORWARD where Docker left no DOCKER-USER). */
export const FORWARD_CHAIN = 'MOAT-FORWARD';
/** Traffic to the host itself, jumped to from INPUT: the userland-proxy path. */
export const INPUT_CHAIN = 'MOAT-INPUT';

export function shortHash(text: string, length = 12): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/** A chain of allowed sources for one or more published ports; shared by equal source lists. */
export function sourcesChainName(family: Family, sourcesKey: string): string {
  return `MOAT-SRC-${shortHash(`${family}|${sourcesKey}`, 10)}`;
}

/** The egress chain of one container group. */
export function egressChainName(group: string): string {
  return `MOAT-EGR-${shortHash(group, 10)}`;
}

export function isOwnedChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}

export function isOwnedIpset(name: string): boolean {
  return name.startsWith(IPSET_PREFIX);
}

/** A rule moat writes: its comment first, then the spec. */
export function ownedRule(chain: string, spec: string): OwnedRule {
  const id = shortHash(`${chain} ${spec}`);
  return { chain, spec, id, line: `-m comment --comment "moat:${id}" ${spec}` };
}

/** The marker rule's comment prefix: `moat-digest:<digest>` records what was last applied. */
export const DIGEST_PREFIX = 'moat-digest:';
