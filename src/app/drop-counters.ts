/**
 * What status, apply (its metrics) and `moat drops` share: the kernel's counters of the DROP
 * rules a desired state holds, mapped to the policy rules, and where those rules are in the file.
 */
import type { DesiredState } from '../compile/model.js';
import type { CommandRunner } from '../core/runner.js';
import { readRuleCounters } from '../netfilter/counters.js';
import type { IptablesBackend } from '../netfilter/model.js';
import { dropChains, dropReport, type DropReport } from '../plan/drops.js';
import type { Locate } from '../plan/drop-words.js';
import { locatorFor } from '../policy/locate.js';

/** Reads the counters of moat's DROP rules in both families (at once) and maps them. */
export async function readDropReport(
  runner: CommandRunner,
  backend: IptablesBackend,
  desired: DesiredState,
): Promise<DropReport> {
  const [ipv4, ipv6] = await Promise.all([
    readRuleCounters(runner, backend, 'ipv4', dropChains(desired, 'ipv4')),
    readRuleCounters(runner, backend, 'ipv6', dropChains(desired, 'ipv6')),
  ]);
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
