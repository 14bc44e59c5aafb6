/**
 * Drop logging: which of moat's DROP rules log (the policy's `log` settings, inherited from
 * `defaults.log` through an egress section to its rules), and the NFLOG rule that logs one.
 *
 * The logging rule sits just before its DROP, with the same matches plus `--ctstate NEW` and a
 * rate limit, so it logs what the DROP is about to drop: new connections, never a flood's worth.
 * NFLOG does not end the packet's walk (it neither accepts nor drops), so moat still only RETURNs
 * or DROPs. Its prefix names the DROP rule's id, which maps back to the policy rules that made
 * it, and a short hint a person can read without moat (`ghost.ingress[0]`). Pure.
 */
import { DEFAULT_DROP_LOGGING, type Policy } from '../policy/model.js';
import type { RuleOrigin } from './model.js';

/** Every log line of moat's starts with this word. */
export const LOG_PREFIX_WORD = 'moat-drop';
/** The kernel keeps 63 characters of an NFLOG prefix (64 with the NUL). */
export const MAX_LOG_PREFIX = 63;
const DROP_TARGET = '-j DROP';

/** Whether a DROP with these origins logs: any of them asks for it. */
export function logsDrop(policy: Policy, origins: readonly RuleOrigin[]): boolean {
  return origins.some((o) => logsOrigin(policy, o.path));
}

/** The `log` in force for one origin: its own, else its egress section's, else `defaults.log`. */
export function logsOrigin(policy: Policy, path: readonly (string | number)[]): boolean {
  const fallback = policy.defaults.log ?? false;
  if (path[0] !== 'containers') return fallback;
  const group = policy.containers.find((g) => g.name === path[1]);
  if (group === undefined) return fallback;
  if (path[2] === 'ingress' && typeof path[3] === 'number')
    return group.ingress[path[3]]?.log ?? fallback;
  if (path[2] !== 'egress') return fallback;
  const section = group.egress?.log ?? fallback;
  if (path[3] === 'deny' && typeof path[4] === 'number')
    return group.egress?.deny[path[4]]?.log ?? section;
  return section;
}

/** `ghost.ingress[0]`, `api.egress.deny[1]`, `defaults.ingress`: an origin as short as it reads. */
export function originHint(origin: RuleOrigin): string {
  const path = origin.path[0] === 'containers' ? origin.path.slice(1) : origin.path;
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** `moat-drop <id> <hint>[+N]`, at most 63 characters: the hint is cut (`~`) to fit. */
export function logPrefix(dropId: string, origins: readonly RuleOrigin[]): string {
  const head = `${LOG_PREFIX_WORD} ${dropId}`;
  const first = origins[0];
  if (first === undefined) return head;
  const more = origins.length > 1 ? `+${origins.length - 1}` : '';
  const room = MAX_LOG_PREFIX - head.length - 1 - more.length;
  const hint = originHint(first);
  return `${head} ${hint.length <= room ? hint : `${hint.slice(0, room - 1)}~`}${more}`;
}

/** What a logged prefix says: the DROP rule's id and the hint, as far as they were kept. */
export interface LoggedPrefix {
  readonly dropId: string;
  readonly hint?: string;
}

const PREFIX_PATTERN = new RegExp(`(?:^|[\\s"])${LOG_PREFIX_WORD} ([0-9a-f]{12})(?: ([^\\s"]+))?`);

/** Finds moat's prefix anywhere in a log line; undefined when the line is not moat's. */
export function parseLogPrefix(text: string): LoggedPrefix | undefined {
  const m = PREFIX_PATTERN.exec(text);
  if (m?.[1] === undefined) return undefined;
  return m[2] === undefined ? { dropId: m[1] } : { dropId: m[1], hint: m[2] };
}

/**
 * The NFLOG rule logging what a DROP rule drops: the DROP's matches, new connections only, at
 * the policy's rate. Undefined for a rule that is not a DROP.
 */
export function logSpecFor(
  policy: Policy,
  dropSpec: string,
  dropId: string,
  origins: readonly RuleOrigin[],
): string | undefined {
  if (!dropSpec.endsWith(DROP_TARGET)) return undefined;
  const { group, limit } = policy.logging ?? DEFAULT_DROP_LOGGING;
  const match = dropSpec.slice(0, -DROP_TARGET.length).trim();
  return [
    match,
    '-m conntrack --ctstate NEW',
    `-m limit --limit ${limit.count}/${limit.per} --limit-burst ${limit.count}`,
    `-j NFLOG --nflog-group ${group} --nflog-prefix "${logPrefix(dropId, origins)}"`,
  ]
    .filter((part) => part !== '')
    .join(' ');
}
