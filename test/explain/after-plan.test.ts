/**
 * The ruleset after a plan, computed in memory, is one the same policy plans nothing against:
 * on every golden case (first applies, drift, removal, ipsets). What the kernel makes of the
 * same plan is checked by test/e2e/explain-differential.test.ts (--after-plan vs applied).
 */
import { describe, expect, test } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../src/compile/compile.js';
import { hostFacts } from '../../src/compile/host-facts.js';
import { netfilterAfterPlan } from '../../src/explain/after-plan.js';
import { readSnapshot } from '../../src/host/snapshot.js';
import { diff } from '../../src/plan/diff.js';
import { parsePolicy } from '../../src/policy/parse.js';

const ROOT = new URL('../fixtures/golden/', import.meta.url).pathname;
const cases = readdirSync(ROOT, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name);

describe('netfilterAfterPlan', () => {
  test.each(cases)('%s: the plan applied in memory leaves nothing to plan', async (name) => {
    const parsed = parsePolicy(
      readFileSync(join(ROOT, name, 'firewall.yaml'), 'utf8'),
      'firewall.yaml',
    );
    if (parsed.policy === undefined) throw new Error('invalid golden policy');
    const { live, inventory } = await readSnapshot(join(ROOT, name, 'state'));
    const desired = compile(parsed.policy, inventory, hostFacts(live));
    const plan = diff(desired, live);
    expect(plan.steps.length).toBeGreaterThan(0);
    const after = netfilterAfterPlan(live, plan);
    expect(diff(desired, after).steps).toEqual([]);
    // Only the filter table and moat's sets change.
    for (const family of ['ipv4', 'ipv6'] as const) {
      for (const [table, content] of live.rulesets[family].tables) {
        if (table !== 'filter') expect(after.rulesets[family].tables.get(table)).toBe(content);
      }
    }
  });
});
