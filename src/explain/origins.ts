/**
 * moat's rule ids → the policy line that made each rule (`firewall.yaml:12:9`), from the
 * compiled desired state and the policy's text. Pure.
 */
import { LineCounter, parseDocument } from 'yaml';
import type { DesiredState } from '../compile/model.js';
import { originWords } from '../compile/origin.js';
import { Locator } from '../policy/locate.js';
import type { OriginLookup, PolicyOrigin } from './render.js';

export function originLookup(desired: DesiredState, file: string, text: string): OriginLookup {
  const lineCounter = new LineCounter();
  const locator = new Locator(parseDocument(text, { lineCounter }), lineCounter);
  const byId = new Map<string, PolicyOrigin>();
  for (const family of Object.values(desired.families)) {
    const rules = [...family.chains.flatMap((c) => c.rules), ...family.jumps.map((j) => j.rule)];
    for (const rule of rules) {
      const [first] = rule.origins;
      if (first === undefined || byId.has(rule.id)) continue;
      const at = locator.locate(first.path);
      const what = rule.origins.map(originWords).join(', ');
      byId.set(rule.id, { file, line: at.line, column: at.column, what });
    }
  }
  return (id) => byId.get(id);
}
