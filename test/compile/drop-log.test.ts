/**
 * Drop logging in the compiled rules: which DROPs log (the `log` settings and their
 * inheritance), the NFLOG rule just before each (same matches, new connections, rate-limited,
 * non-terminating), a prefix that fits the kernel's 63 characters and reads back to the DROP's
 * id, and DROP rules that do not change when logging is turned on (their counters survive).
 */
import { describe, expect, test } from '@jest/globals';
import { compile } from '../../src/compile/compile.js';
import {
  logPrefix,
  logsOrigin,
  MAX_LOG_PREFIX,
  parseLogPrefix,
} from '../../src/compile/drop-log.js';
import type { DesiredFamily, DesiredState } from '../../src/compile/model.js';
import { desiredView, reachOn, type PathPacket } from '../../src/plan/reach.js';
import type { Policy } from '../../src/policy/model.js';
import { container, group, inventory, policy, tcp } from '../support/builders.js';

const v4 = (cidr: string) => ({ kind: 'cidr', block: { family: 'ipv4', cidr } }) as const;

function withLogging(log: {
  rule?: boolean;
  defaults?: boolean;
  section?: boolean;
  deny?: boolean;
}): Policy {
  return policy(
    [
      group('ghost', {
        ingress: [
          {
            ports: [tcp(2368)],
            from: [{ kind: 'host' }],
            ...(log.rule === undefined ? {} : { log: log.rule }),
          },
        ],
      }),
      group('api', {
        egress: {
          default: 'deny',
          allow: [{ to: [v4('203.0.113.0/24')] }],
          deny: [
            {
              to: [v4('10.0.0.0/8')],
              ...(log.deny === undefined ? {} : { log: log.deny }),
            },
          ],
          ...(log.section === undefined ? {} : { log: log.section }),
        },
      }),
    ],
    {
      defaults: {
        ingress: 'host',
        egress: 'deny',
        ...(log.defaults === undefined ? {} : { log: log.defaults }),
      },
    },
  );
}

const hosts = inventory(
  container('ghost', '172.17.0.2', [{ host: 2368 }]),
  container('api', '172.17.0.3'),
);

function nflogRules(family: DesiredFamily): { chain: string; spec: string; next: string }[] {
  return family.chains.flatMap((c) =>
    c.rules.flatMap((r, i) =>
      r.spec.includes('-j NFLOG')
        ? [{ chain: c.name, spec: r.spec, next: c.rules[i + 1]?.spec ?? '' }]
        : [],
    ),
  );
}

function dropIds(d: DesiredState): string[] {
  return (['ipv4', 'ipv6'] as const).flatMap((f) =>
    d.families[f].chains.flatMap((c) =>
      c.rules.filter((r) => r.spec.endsWith('-j DROP')).map((r) => `${f} ${c.name} ${r.id}`),
    ),
  );
}

describe('which drops log', () => {
  test('a rule’s own `log` wins; else its egress section’s; else defaults.log', () => {
    const p = withLogging({ defaults: true, rule: false, section: false, deny: true });
    expect(logsOrigin(p, ['containers', 'ghost', 'ingress', 0])).toBe(false);
    expect(logsOrigin(p, ['containers', 'api', 'egress', 'deny', 0])).toBe(true);
    expect(logsOrigin(p, ['containers', 'api', 'egress', 'default'])).toBe(false);
    expect(logsOrigin(p, ['defaults', 'ingress'])).toBe(true);
    const q = withLogging({ section: true });
    expect(logsOrigin(q, ['containers', 'api', 'egress', 'deny', 0])).toBe(true);
    expect(logsOrigin(q, ['containers', 'ghost', 'ingress', 0])).toBe(false);
    expect(logsOrigin(q, ['defaults', 'egress'])).toBe(false);
  });

  test('nothing logs unless asked: no NFLOG rule at all', () => {
    const d = compile(withLogging({}), hosts);
    expect(nflogRules(d.families.ipv4)).toEqual([]);
    expect(nflogRules(d.families.ipv6)).toEqual([]);
  });
});

describe('the NFLOG rules', () => {
  test('each sits just before its DROP, with its matches, new connections only, rate-limited', () => {
    const d = compile(withLogging({ rule: true }), hosts);
    const rules = nflogRules(d.families.ipv4);
    expect(rules.map((r) => r.chain).sort()).toEqual(['MOAT-INGRESS', 'MOAT-INPUT']);
    for (const r of rules) {
      expect(r.next.endsWith('-j DROP')).toBe(true);
      const match = r.next.slice(0, -'-j DROP'.length).trim();
      expect(r.spec).toMatch(
        /-m conntrack --ctstate NEW -m limit --limit 10\/minute --limit-burst 10 -j NFLOG --nflog-group 0 --nflog-prefix "moat-drop [0-9a-f]{12} ghost\.ingress\[0\]"$/,
      );
      expect(r.spec.startsWith(match)).toBe(true);
    }
    const ingress = rules.find((r) => r.chain === 'MOAT-INGRESS');
    const dropId = d.families.ipv4.chains
      .find((c) => c.name === 'MOAT-INGRESS')
      ?.rules.find((x) => x.spec === ingress?.next)?.id;
    expect(parseLogPrefix(ingress?.spec ?? '')?.dropId).toBe(dropId);
  });

  test('the group and limit come from `logging`', () => {
    const p = {
      ...withLogging({ defaults: true }),
      logging: { group: 7, limit: { count: 3, per: 'hour' } },
    } as const;
    const rules = nflogRules(compile(p, hosts).families.ipv4);
    expect(rules.length).toBeGreaterThan(0);
    for (const r of rules)
      expect(r.spec).toContain('-m limit --limit 3/hour --limit-burst 3 -j NFLOG --nflog-group 7 ');
    expect(rules.some((r) => r.spec.includes(' defaults.egress"'))).toBe(true);
    expect(rules.some((r) => r.spec.includes(' api.egress.default"'))).toBe(true);
  });

  test('turning logging on changes no DROP rule (their counters survive) and no reach', () => {
    const quiet = compile(withLogging({}), hosts);
    const loud = compile(withLogging({ defaults: true }), hosts);
    expect(dropIds(loud)).toEqual(dropIds(quiet));
    for (const family of ['ipv4', 'ipv6'] as const)
      for (const path of ['dnat', 'proxy'] as const) {
        const packet: PathPacket = {
          family,
          path,
          protocol: 'tcp',
          port: 2368,
          containerPort: 2368,
          outInterface: 'docker0',
        };
        expect(reachOn(desiredView(loud.families[family]), packet)).toEqual(
          reachOn(desiredView(quiet.families[family]), packet),
        );
      }
  });
});

describe('the prefix', () => {
  test('fits 63 characters, cutting a long hint, and reads back to the id', () => {
    const long = `g${'x'.repeat(62)}`;
    const prefix = logPrefix('0123456789ab', [
      { path: ['containers', long, 'egress', 'deny', 12] },
      { path: ['containers', 'b', 'ingress', 0] },
    ]);
    expect(prefix.length).toBeLessThanOrEqual(MAX_LOG_PREFIX);
    expect(prefix).toMatch(/^moat-drop 0123456789ab gx+~\+1$/);
    expect(parseLogPrefix(`Dec  1 13:38:59 vm ${prefix} IN=vd0 OUT=docker0`)).toEqual({
      dropId: '0123456789ab',
      hint: prefix.slice('moat-drop 0123456789ab '.length),
    });
    expect(logPrefix('0123456789ab', [{ path: ['defaults', 'ingress'] }])).toBe(
      'moat-drop 0123456789ab defaults.ingress',
    );
    expect(parseLogPrefix('kernel: IN=eth0 OUT= SRC=192.0.2.1')).toBeUndefined();
  });
});
