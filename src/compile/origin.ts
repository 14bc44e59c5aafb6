/**
 * A compiled rule's origin in words: the policy path that made it, as the policy writes it
 * (`containers.ghost.ingress[0]`) and as a person says it (`ghost ingress rule 1`). Pure.
 */
import type { RuleOrigin } from './model.js';

/** `containers.ghost.ingress[0]`. */
export function originLabel(origin: RuleOrigin): string {
  return origin.path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join('');
}

/** `ghost ingress rule 1`, `api egress deny rule 2`, `defaults.ingress`. */
export function originWords(origin: RuleOrigin): string {
  const [head, group, direction, ...rest] = origin.path;
  if (head !== 'containers') return originLabel(origin);
  const words = [String(group), String(direction)];
  for (const p of rest) words.push(typeof p === 'number' ? `rule ${p + 1}` : p);
  return words.join(' ');
}
