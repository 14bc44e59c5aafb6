import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { compile } from '../../src/compile/compile.js';
import { diff } from '../../src/plan/diff.js';
import { renderRestore } from '../../src/apply/render-restore.js';
import { renderPlanText } from '../../src/plan/render-text.js';
import { planFromDocument, renderPlanJson } from '../../src/plan/render-json.js';
import type { IngressSource } from '../../src/policy/model.js';
import {
  appliedLive,
  container,
  dockerHost,
  editChain,
  group,
  inventory,
  managedIpset,
  policy,
  ruleOf,
  tcp,
} from '../support/builders.js';

const ghostInventory = inventory(container('ghost', '172.17.0.2', [{ host: 2368 }]));
const hostOnly = policy([
  group('ghost', { ingress: [{ ports: [tcp(2368)], from: [{ kind: 'host' }] }] }),
]);
const userRule = '-s 192.0.2.9/32 -j DROP';

describe('diff', () => {
  test('first apply: chains, rules and jumps to add, nothing else; the user rule is untouched', () => {
    const live = dockerHost([userRule]);
    const plan = diff(compile(hostOnly, ghostInventory), live);
    const kinds = plan.steps.map((s) => s.kind);
    expect(new Set(kinds)).toEqual(new Set(['create-chain', 'add-jump']));
    expect(plan.steps.every((s) => s.reason === 'policy')).toBe(true);
    expect(JSON.stringify(plan.steps)).not.toContain('192.0.2.9');
    expect(plan.summary).toEqual({ add: kinds.length, change: 0, destroy: 0 });
  });

  test('a host that matches gives an empty plan', () => {
    const desired = compile(hostOnly, ghostInventory);
    const plan = diff(desired, appliedLive(desired, dockerHost([userRule])));
    expect(plan.steps).toEqual([]);
    expect(renderPlanText(plan, { color: false })).toContain(
      'No changes. The host matches firewall.yaml.',
    );
  });

  test('diff(x, x) is empty for generated policies', () => {
    const source = fc.constantFrom<IngressSource>(
      { kind: 'host' },
      { kind: 'any' },
      { kind: 'cidr', block: { family: 'ipv4', cidr: '198.51.100.0/24' } },
      { kind: 'cidr', block: { family: 'ipv6', cidr: '2001:db8::/48' } },
      { kind: 'container', group: 'g0' },
    );
    const rule = fc.record({
      ports: fc.array(
        fc.integer({ min: 1, max: 65535 }).map((p) => tcp(p)),
        { minLength: 1, maxLength: 3 },
      ),
      from: fc.array(source, { minLength: 1, maxLength: 3 }),
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(rule, { maxLength: 3 }), { maxLength: 4 }),
        fc.boolean(),
        (groups, denyEgress) => {
          const p = policy(
            groups.map((ingress, i) => group(`g${i}`, { ingress })),
            { defaults: { ingress: 'allow', egress: denyEgress ? 'deny' : 'allow' } },
          );
          const inv = inventory(...groups.map((_, i) => container(`g${i}`, `172.17.0.${i + 2}`)));
          const desired = compile(p, inv);
          expect(compile(p, inv)).toEqual(desired); // deterministic
          expect(diff(desired, appliedLive(desired, dockerHost())).steps).toEqual([]);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a flushed chain is drift, and the plan puts it back', () => {
    const desired = compile(hostOnly, ghostInventory);
    const live = editChain(appliedLive(desired, dockerHost()), 'MOAT-INPUT', (c) => ({
      ...c,
      rules: [],
    }));
    const plan = diff(desired, live);
    expect(plan.steps.map((s) => [s.kind, s.reason])).toEqual([['update-chain', 'drift']]);
    expect(renderPlanText(plan, { color: false })).toMatch(/^Changed outside moat \(drift\)/);
  });

  test('a flushed MOAT-FORWARD, marker and all, is drift too', () => {
    const desired = compile(hostOnly, ghostInventory);
    const live = editChain(appliedLive(desired, dockerHost()), 'MOAT-FORWARD', (c) => ({
      ...c,
      rules: [],
    }));
    const plan = diff(desired, live);
    expect(plan.steps.map((s) => [s.kind, s.reason])).toEqual([['update-chain', 'drift']]);
  });

  test('a rule someone added to a moat chain is drift and goes', () => {
    const desired = compile(hostOnly, ghostInventory);
    const live = editChain(appliedLive(desired, dockerHost()), 'MOAT-FORWARD', (c) => ({
      ...c,
      rules: [...c.rules, ruleOf('-s 10.9.9.9/32 -j ACCEPT')],
    }));
    const step = diff(desired, live).steps[0];
    expect(step?.kind).toBe('update-chain');
    expect(step?.kind === 'update-chain' ? step.remove : []).toEqual(['-s 10.9.9.9/32 -j ACCEPT']);
  });

  test('a jump pushed down DOCKER-USER moves back to the top', () => {
    const desired = compile(hostOnly, ghostInventory);
    const live = editChain(appliedLive(desired, dockerHost()), 'DOCKER-USER', (c) => ({
      ...c,
      rules: [ruleOf(userRule), ...c.rules],
    }));
    const plan = diff(desired, live);
    expect(plan.steps.map((s) => [s.kind, s.reason])).toEqual([['move-jump', 'drift']]);
    const script = renderRestore(plan).families.ipv4 ?? '';
    expect(script).toContain('-D DOCKER-USER -m comment --comment "moat:');
    expect(script).toContain('-I DOCKER-USER 1 -m comment --comment "moat:');
    expect(script).not.toContain(userRule);
  });

  test('an empty policy removes every moat object and nothing else', () => {
    const desired = compile(hostOnly, ghostInventory);
    const live = appliedLive(desired, dockerHost([userRule]));
    const plan = diff(compile(policy([]), ghostInventory), live);
    expect(plan.summary.add).toBe(0);
    expect(plan.summary.change).toBe(0);
    const script = renderRestore(plan).families.ipv4 ?? '';
    const lines = script.split('\n');
    expect(lines.filter((l) => l.startsWith('-X ')).sort()).toEqual(
      desired.families.ipv4.chains.map((c) => `-X ${c.name}`).sort(),
    );
    expect(
      lines
        .filter((l) => l.startsWith('-D '))
        .map((l) => l.split(' ')[1])
        .sort(),
    ).toEqual(['DOCKER-USER', 'INPUT']);
    expect(script).not.toContain('192.0.2.9');
    const after = appliedLive(compile(policy([]), ghostInventory), live);
    expect(diff(compile(policy([]), ghostInventory), after).steps).toEqual([]);
  });

  test('the plan says what changes for people, and survives a JSON round trip', () => {
    const plan = diff(compile(hostOnly, ghostInventory), dockerHost());
    const text = renderPlanText(plan, { color: false });
    expect(text).toContain('ghost 2368/tcp: reachable from host only (was: anyone)');
    expect(text.trimEnd().split('\n').at(-1)).toBe(
      `Plan: ${plan.summary.add} to add, 0 to change, 0 to destroy.`,
    );
    expect(planFromDocument(renderPlanJson(plan), 'plan.json').plan).toEqual(plan);
    expect(() => planFromDocument('{"format_version": 99}', 'p.json')).toThrow(/format_version 99/);
  });

  test('the restore input of a first apply', () => {
    const plan = diff(compile(hostOnly, ghostInventory), dockerHost());
    const script = renderRestore(plan).families.ipv4 ?? '';
    const lines = script.trimEnd().split('\n');
    expect(lines[0]).toBe('*filter');
    expect(lines.at(-1)).toBe('COMMIT');
    const declared = lines.filter((l) => l.startsWith(':'));
    expect(declared).toEqual([
      ':MOAT-FORWARD - [0:0]',
      ':MOAT-INPUT - [0:0]',
      ':MOAT-INGRESS - [0:0]',
      ':MOAT-DIRECT - [0:0]',
      ':MOAT-DIRECT-PORTS - [0:0]',
    ]);
    const firstRule = lines.findIndex((l) => l.startsWith('-'));
    expect(Math.max(...declared.map((d) => lines.indexOf(d)))).toBeLessThan(firstRule);
    expect(
      lines
        .filter((l) => l.startsWith('-A '))
        .every((l) => /^-A MOAT-\S+ -m comment --comment "moat:[0-9a-f]{12}" /.test(l)),
    ).toBe(true);
    expect(lines.filter((l) => l.startsWith('-I '))).toHaveLength(2);
  });

  test('a host that matches says nothing about reach: no "was:" for sources of every kind', () => {
    const p = policy(
      [
        group('ghost', {
          ingress: [
            {
              ports: [tcp(2368)],
              from: [
                { kind: 'host' },
                { kind: 'ipset', set: 'office' },
                { kind: 'container', group: 'api' },
                { kind: 'cidr', block: { family: 'ipv4', cidr: '203.0.113.7/32' } },
              ],
            },
          ],
        }),
        group('api'),
      ],
      { ipsets: new Map([managedIpset('office', 'hash:net', ['198.51.100.0/24'])]) },
    );
    const inv = inventory(
      container('ghost', '172.17.0.2', [{ host: 2368 }]),
      container('api', '172.17.0.3'),
    );
    const desired = compile(p, inv);
    const first = renderPlanText(diff(desired, dockerHost()), { color: false });
    expect(first).toContain(
      'ghost 2368/tcp: reachable from host, container:api, 203.0.113.7/32, ipset:office (was: anyone)',
    );
    const plan = diff(desired, appliedLive(desired, dockerHost()));
    expect(plan.steps).toEqual([]);
    const text = renderPlanText(plan, { color: false });
    expect(text).not.toContain('was:');
    expect(text).toContain('No changes.');
  });

  test('creating managed ipsets on a host moat never touched is a change of policy, not drift', () => {
    const p = policy([group('mailer')], {
      ipsets: new Map([managedIpset('relays', 'hash:net', ['198.51.100.25'])]),
    });
    const plan = diff(compile(p, inventory()), dockerHost());
    expect(plan.steps.map((step) => [step.kind, step.reason])).toEqual([['create-set', 'policy']]);
    expect(renderPlanText(plan, { color: false })).not.toContain('drift');
  });
});
