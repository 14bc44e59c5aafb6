/**
 * Render a LiveRuleset back as iptables-restore input, so a snapshot can be written to disk or
 * loaded again on rollback. Pure. `parseSave(renderSave(x), x.family)` equals `x`.
 */
import type { LiveRuleset } from './model.js';

/**
 * One `*table … COMMIT` block per table, in the ruleset's order (only `tables` when given).
 * Counters are written as `[0:0]`: moat never restores packet counts.
 */
export function renderSave(ruleset: LiveRuleset, tables?: readonly string[]): string {
  const out: string[] = [];
  for (const table of ruleset.tables.values()) {
    if (tables !== undefined && !tables.includes(table.name)) continue;
    out.push(`*${table.name}`);
    for (const chain of table.chains.values()) {
      out.push(`:${chain.name} ${chain.policy ?? '-'} [0:0]`);
    }
    for (const chain of table.chains.values()) {
      for (const rule of chain.rules) {
        out.push(rule.spec === '' ? `-A ${chain.name}` : `-A ${chain.name} ${rule.spec}`);
      }
    }
    out.push('COMMIT');
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
