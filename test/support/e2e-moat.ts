/**
 * Shared steps of the end-to-end tests: apply a policy with the built CLI exactly as a user
 * would and check the host converged; reachability assertions that print the ruleset on failure.
 */
import { expect } from '@jest/globals';
import type { DockerSandbox } from './docker-sandbox.js';
import { moat, type PolicyDir } from './moat-cli.js';

/** `moat apply -f FILE --auto-approve` must succeed, then `moat plan --detailed-exitcode` exit 0. */
export function applyConverged(sandbox: DockerSandbox, policy: PolicyDir, text: string): string {
  const file = policy.write(text);
  const applied = moat(sandbox, ['apply', '-f', file, '--auto-approve'], sandbox.env);
  if (applied.status !== 0)
    throw new Error(
      `moat apply exited ${applied.status}\n${applied.stdout}\n${applied.stderr}\n${rulesets(sandbox)}`,
    );
  expect(applied.stderr).toBe('');
  expect(applied.stdout).toMatch(/Apply complete|No changes/);
  const plan = moat(sandbox, ['plan', '-f', file, '--detailed-exitcode'], sandbox.env);
  if (plan.status !== 0)
    throw new Error(
      `moat plan after apply exited ${plan.status} (expected 0: converged)\n${plan.stdout}\n${plan.stderr}\n${rulesets(sandbox)}`,
    );
  return applied.stdout;
}

/** The host namespace's filter tables and ipsets, for failure messages and bug reports. */
export function rulesets(sandbox: DockerSandbox): string {
  const v4 = sandbox.execInHost('iptables-save', ['-t', 'filter']).stdout;
  const v6 = sandbox.execInHost('ip6tables-save', ['-t', 'filter']).stdout;
  const sets = sandbox.execInHost('ipset', ['save']).stdout;
  return `--- iptables-save -t filter ---\n${v4}--- ip6tables-save -t filter ---\n${v6}--- ipset save ---\n${sets}`;
}

/**
 * Asserts each probe's outcome; on a mismatch fails with every mismatch and the host's
 * ruleset, so a failure is a bug report.
 */
export function expectReachability(
  sandbox: DockerSandbox,
  probes: ReadonlyArray<readonly [what: string, expected: boolean, probe: () => boolean]>,
): void {
  const wrong: string[] = [];
  for (const [what, expected, probe] of probes) {
    const actual = probe();
    if (actual !== expected)
      wrong.push(
        `${what}: ${actual ? 'reached' : 'not reached'}, expected ${expected ? 'reached' : 'not reached'}`,
      );
  }
  if (wrong.length > 0) throw new Error(`${wrong.join('\n')}\n${rulesets(sandbox)}`);
}
