/**
 * Rules that add up. Every ingress rule naming a port, in any group, contributes its sources to
 * that port; ranges that overlap add up where they overlap. The port space of each protocol is
 * cut into disjoint segments whose sources are the union of every rule covering them, so a
 * packet meets exactly one segment's source list. Pure.
 */
import type { RuleOrigin } from './model.js';
import type { Cidr, IngressSource, PortRange, Protocol } from '../policy/model.js';

/** A union of ingress sources in the policy's terms. The host itself is always allowed. */
export interface SourceSet {
  readonly anyone: boolean;
  /** Canonical blocks, sorted by text. */
  readonly cidrs: readonly Cidr[];
  /** Policy ipset keys, sorted. */
  readonly ipsets: readonly string[];
  /** Container groups, sorted. */
  readonly groups: readonly string[];
}

export const HOST_ONLY: SourceSet = { anyone: false, cidrs: [], ipsets: [], groups: [] };
export const ANYONE: SourceSet = { anyone: true, cidrs: [], ipsets: [], groups: [] };

/** One ingress rule's claim on a range of ports. */
export interface PortClaim {
  readonly range: PortRange;
  readonly sources: readonly IngressSource[];
  readonly origin: RuleOrigin;
}

export interface PortSegment {
  readonly protocol: Protocol;
  readonly first: number;
  readonly last: number;
  readonly sources: SourceSet;
  readonly origins: readonly RuleOrigin[];
}

function sorted<T>(items: Iterable<T>, key: (item: T) => string): T[] {
  const byKey = new Map<string, T>();
  for (const item of items) byKey.set(key(item), item);
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}

/** The union of source lists; `any` anywhere makes the union "anyone" with nothing else. */
export function unionOf(lists: readonly (readonly IngressSource[])[]): SourceSet {
  const all = lists.flat();
  if (all.some((s) => s.kind === 'any')) return ANYONE;
  const cidrs: Cidr[] = [];
  const ipsets: string[] = [];
  const groups: string[] = [];
  for (const source of all) {
    if (source.kind === 'cidr') cidrs.push(source.block);
    else if (source.kind === 'ipset') ipsets.push(source.set);
    else if (source.kind === 'container') groups.push(source.group);
  }
  return {
    anyone: false,
    cidrs: sorted(cidrs, (c) => c.cidr),
    ipsets: sorted(ipsets, (s) => s),
    groups: sorted(groups, (g) => g),
  };
}

export function sourceSetKey(set: SourceSet): string {
  return JSON.stringify([set.anyone, set.cidrs.map((c) => c.cidr), set.ipsets, set.groups]);
}

function originKey(origins: readonly RuleOrigin[]): string {
  return JSON.stringify(origins.map((o) => o.path));
}

/** Disjoint segments per protocol, in port order; ports no claim covers have none. */
export function segmentsOf(claims: readonly PortClaim[]): PortSegment[] {
  const out: PortSegment[] = [];
  for (const protocol of ['tcp', 'udp'] as const) {
    const mine = claims.filter((c) => c.range.protocol === protocol);
    const cuts = [...new Set(mine.flatMap((c) => [c.range.first, c.range.last + 1]))].sort(
      (a, b) => a - b,
    );
    for (let i = 0; i + 1 < cuts.length; i++) {
      const first = cuts[i] ?? 0;
      const last = (cuts[i + 1] ?? 0) - 1;
      const covering = mine.filter((c) => c.range.first <= first && c.range.last >= last);
      if (covering.length === 0) continue;
      const sources = unionOf(covering.map((c) => c.sources));
      const origins = sorted(
        covering.map((c) => c.origin),
        (o) => JSON.stringify(o.path),
      );
      const previous = out[out.length - 1];
      if (
        previous !== undefined &&
        previous.protocol === protocol &&
        previous.last + 1 === first &&
        sourceSetKey(previous.sources) === sourceSetKey(sources) &&
        originKey(previous.origins) === originKey(origins)
      ) {
        out[out.length - 1] = { ...previous, last };
      } else {
        out.push({ protocol, first, last, sources, origins });
      }
    }
  }
  return out;
}

/** The segment covering a port, if any. */
export function segmentAt(
  segments: readonly PortSegment[],
  protocol: Protocol,
  port: number,
): PortSegment | undefined {
  return segments.find((s) => s.protocol === protocol && s.first <= port && port <= s.last);
}
