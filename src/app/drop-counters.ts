/**
 * What status, apply (its metrics) and `moat drops` share: the kernel's counters of the DROP
 * rules a desired state holds, mapped to the policy rules, and where those rules are in the file.
 */
import type { DesiredState } from '../compile/model.js';
import type { CommandRunner } from '../core/runner.js';
import { readRuleCounters } from '../netfilter/counters.js';
import type { IptablesBackend, LiveNetfilter } from '../netfilter/model.js';
import type { Family } from '../policy/model.js';
import { dropChains, dropReport, type DropReport } from '../plan/drops.js';
import type { Locate } from '../plan/drop-words.js';
import { locatorFor } from '../policy/locate.js';

/** Rules of a family's filter table as last read: what decides how counters are read. */
function tableRules(live: LiveNetfilter | undefined, family: Family): number | undefined {
  const chains = live?.rulesets[family].tables.get('filter')?.chains;
  if (chains === undefined) return undefined;
  let rules = 0;
  for (const chain of chains.values()) rules += chain.rules.length;
  return rules;
}

/**
 * Reads the counters of moat's DROP rules in both families (at once) and maps them. `live`, the
 * host as last read, lets a small table be listed at once rather than chain by chain.
 */
export async function readDropReport(
  runner: CommandRunner,
  backend: IptablesBackend,
  desired: DesiredState,
  live?: LiveNetfilter,
): Promise<DropReport> {
  const read = (family: Family) => {
    const rules = tableRules(live, family);
    return readRuleCounters(
      runner,
      backend,
      family,
      dropChains(desired, family),
      rules === undefined ? {} : { tableRules: rules },
    );
  };
  const [ipv4, ipv6] = await Promise.all([read('ipv4'), read('ipv6')]);
  return dropReport(desired, { ipv4, ipv6 });
}

/** `FILE:LINE:COL` of a policy path in the policy's text; the text is read again only if asked. */
export function policyLocate(file: string, text: string): Locate {
  let locator: ReturnType<typeof locatorFor> | undefined;
  return (path) => {
    locator ??= locatorFor(text);
    const at = locator.locate(path);
    return `${file}:${at.line}:${at.column}`;
  };
}
