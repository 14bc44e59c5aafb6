/** The policy's drop-logging options: where `log` may stand, `logging`, and their errors. */
import { describe, expect, test } from '@jest/globals';
import { parsePolicy } from '../../src/policy/parse.js';

function parsed(text: string) {
  const result = parsePolicy(text, 'firewall.yaml');
  return {
    policy: result.policy,
    problems: result.diagnostics.map((d) => `${d.line}:${d.column} ${d.code} ${d.message}`),
  };
}

const FULL = `version: 1
defaults:
  ingress: host
  log: true
logging:
  group: 5
  limit: 3/hour
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host]
        log: false
    egress:
      default: deny
      log: true
      deny:
        - to: [10.0.0.0/8]
          log: false
`;

describe('drop logging options', () => {
  test('log on defaults, ingress rules, egress sections and deny rules; logging group and limit', () => {
    const { policy, problems } = parsed(FULL);
    expect(problems).toEqual([]);
    expect(policy?.defaults.log).toBe(true);
    expect(policy?.logging).toEqual({ group: 5, limit: { count: 3, per: 'hour' } });
    const ghost = policy?.containers[0];
    expect(ghost?.ingress[0]?.log).toBe(false);
    expect(ghost?.egress?.log).toBe(true);
    expect(ghost?.egress?.deny[0]?.log).toBe(false);
  });

  test('absent: nothing logs, and logging has no entry (the defaults apply)', () => {
    const { policy } = parsed(
      'version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ports: [1]\n        from: [host]\n',
    );
    expect(policy?.defaults.log).toBeUndefined();
    expect(policy?.logging).toBeUndefined();
    expect(policy?.containers[0]?.ingress[0]?.log).toBeUndefined();
  });

  test('an allow rule cannot log; a limit beyond iptables’ and a bad group are located errors', () => {
    const { problems } = parsed(`version: 1
logging:
  group: 70000
  limit: 20000/second
containers:
  api:
    egress:
      default: deny
      allow:
        - to: [10.0.0.0/8]
          log: true
`);
    expect(problems).toEqual([
      '3:10 schema expected an NFLOG group number from 0 to 65535',
      '4:10 bad-rate a logging limit of 20000 lines is more than iptables allows (at most 10000)',
      '11:11 log-without-drop an allow rule drops nothing, so it has nothing to log; set `log` on the egress section or on a deny rule',
    ]);
    expect(parsed('version: 1\nlogging:\n  limit: 10/week\n').problems).toEqual([
      '3:10 schema expected a rate like 10/minute: a number, `/`, and second, minute, hour or day; found `10/week`',
    ]);
  });
});
