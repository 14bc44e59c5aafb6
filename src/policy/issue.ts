/** A problem found in the parsed value, located by path until it becomes a Diagnostic. */
import type { Anchor, PathSegment } from './locate.js';

export interface PolicyIssue {
  readonly path: readonly PathSegment[];
  readonly anchor: Anchor;
  readonly severity: 'error' | 'warning';
  readonly code: string;
  readonly message: string;
}

const MAX_SHOWN = 60;

/** A value as it may appear in a message: one line, quotes and control characters escaped. */
export function show(value: unknown): string {
  if (typeof value === 'string') {
    const escaped = JSON.stringify(value).slice(1, -1).replace(/`/g, '\\`');
    const cut = escaped.length > MAX_SHOWN ? `${escaped.slice(0, MAX_SHOWN)}…` : escaped;
    return `\`${cut}\``;
  }
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value;
}
