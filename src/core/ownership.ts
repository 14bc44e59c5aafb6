/**
 * What moat owns on a host, said once: the name prefixes of its chains and ipsets, the names of
 * its fixed chains, the `moat:<id>` comment every rule it writes carries, and the digest marker
 * that records what it last applied. The parsers, the compiler, the diff and apply all read
 * these facts from here.
 */
import { createHash } from 'node:crypto';

export const CHAIN_PREFIX = 'MOAT-';
export const IPSET_PREFIX = 'moat-';

/** Routed traffic, jumped to from DOCKER-USER (or FORWARD where Docker left no DOCKER-USER). */
export const FORWARD_CHAIN = 'MOAT-FORWARD';
/** Traffic to the host itself, jumped to from INPUT: the userland-proxy path. */
export const INPUT_CHAIN = 'MOAT-INPUT';
/** Connections Docker DNATed to a published port: which sources each port admits. */
export const INGRESS_CHAIN = 'MOAT-INGRESS';
/** Connections into a Docker bridge without DNAT (routed gateway modes, direct access). */
export const DIRECT_CHAIN = 'MOAT-DIRECT';
/** Of those, the ones from outside Docker's networks: which sources each port admits. */
export const DIRECT_PORTS_CHAIN = 'MOAT-DIRECT-PORTS';
/** Connections containers open: which group's egress rules govern each. */
export const EGRESS_CHAIN = 'MOAT-EGRESS';
/** Prefixes of the derived chains: allowed sources of ports, one group's egress. */
export const SOURCES_CHAIN_PREFIX = 'MOAT-SRC-';
export const EGRESS_GROUP_CHAIN_PREFIX = 'MOAT-EGR-';

/** The marker rule's comment prefix: `moat-digest:<digest>` records what was last applied. */
export const DIGEST_PREFIX = 'moat-digest:';

/** `--comment "moat:<id>"` as iptables prints it back, quoted or not. */
const MOAT_COMMENT = /--comment (?:"moat:([0-9a-z]+)"|moat:([0-9a-z]+))(?= |$)/;

export function shortHash(text: string, length = 12): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

export function isOwnedChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}

export function isOwnedIpset(name: string): boolean {
  return name.startsWith(IPSET_PREFIX);
}

/** The id of a rule moat writes: a short hash of its chain and spec. */
export function ruleId(chain: string, spec: string): string {
  return shortHash(`${chain} ${spec}`);
}

/** The text moat writes for a rule: its comment first, then the spec. */
export function taggedRule(id: string, spec: string): string {
  return `-m comment --comment "moat:${id}" ${spec}`;
}

/** The id in a rule's `moat:<id>` comment, if it carries one. */
export function moatIdOf(spec: string): string | undefined {
  if (!spec.includes('moat:')) return undefined;
  const m = MOAT_COMMENT.exec(spec);
  return m === null ? undefined : (m[1] ?? m[2]);
}
