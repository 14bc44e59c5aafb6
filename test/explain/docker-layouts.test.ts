/**
 * The evaluator on Docker's own rule layouts (28.0.0, 28.5.2, 29; test/fixtures/netfilter),
 * alone and with moat's rules planned on top, and the policy line each moat rule came from.
 */
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { compile } from '../../src/compile/compile.js';
import { hostFacts } from '../../src/compile/host-facts.js';
import { worldAfterPlan } from '../../src/explain/after-plan.js';
import type { World } from '../../src/explain/model.js';
import { originLookup } from '../../src/explain/origins.js';
import { explain, parseSource, parseTarget } from '../../src/explain/query.js';
import { renderExplanationText } from '../../src/explain/render.js';
import { diff } from '../../src/plan/diff.js';
import { parsePolicy } from '../../src/policy/parse.js';
import { EMPTY_SAVE, world } from '../support/explain-world.js';

const FIXTURES = new URL('../fixtures/netfilter/', import.meta.url).pathname;
const read = (name: string): string => readFileSync(`${FIXTURES}${name}.iptables-save`, 'utf8');
const EXT_BRIDGES =
  'create docker-ext-bridges-v4 hash:net family inet\nadd docker-ext-bridges-v4 192.0.2.0/24\nadd docker-ext-bridges-v4 172.17.0.0/16\n';

function layout(version: string, variant = ''): World {
  return world({
    ipv4: read(`${version}-usernet-portmap${variant}`),
    ipv6: EMPTY_SAVE,
    ipsets: EXT_BRIDGES,
  });
}

function verdict(w: World, from: string, to: string): string {
  const answer = explain(w, parseSource(from), parseTarget(to)).answers[0];
  return answer?.probes[0]?.outcome.verdict ?? `no probe (${answer?.note ?? ''})`;
}

describe.each(['v28.0.0', 'v28.5.2', 'v29-main'])("Docker's layout %s", (version) => {
  test('a published port is open to anyone; direct access is dropped in raw', () => {
    const w = layout(version);
    expect(verdict(w, '203.0.113.9', 'web:8080/tcp')).toBe('reachable');
    expect(verdict(w, 'host', 'web:8080/tcp')).toBe('reachable');
    expect(verdict(w, '203.0.113.9', '192.0.2.2:80/tcp')).toBe('blocked');
    // Isolation between bridge networks.
    expect(verdict(w, 'container:ghost', '192.0.2.2:80/tcp')).toBe('blocked');
    expect(verdict(w, 'container:web', '203.0.113.9:443/tcp')).toBe('reachable');
  });

  test('a routed gateway lets outside hosts reach the published container port directly', () => {
    const w = layout(version, '-routed');
    expect(verdict(w, '203.0.113.9', '192.0.2.2:80/tcp')).toBe('reachable');
    expect(verdict(w, '203.0.113.9', '192.0.2.2:81/tcp')).toBe('blocked');
  });

  test("moat's host-only rule closes the published port, and names its policy line", () => {
    const base = layout(version);
    const text =
      'version: 1\ncontainers:\n  web:\n    ingress:\n      - ports: [8080/tcp]\n        from: [host]\n';
    const policy = parsePolicy(text, 'firewall.yaml').policy;
    if (policy === undefined) throw new Error('invalid policy');
    const desired = compile(policy, base.inventory, hostFacts(base.netfilter));
    const after = worldAfterPlan(base, diff(desired, base.netfilter));
    expect(verdict(after, '203.0.113.9', 'web:8080/tcp')).toBe('blocked');
    expect(verdict(after, 'host', 'web:8080/tcp')).toBe('reachable');
    const explanation = explain(after, parseSource('203.0.113.9'), parseTarget('web:8080/tcp'));
    const rendered = renderExplanationText(explanation, {
      origins: originLookup(desired, 'firewall.yaml', text),
    });
    expect(rendered).toMatch(
      /MOAT-FORWARD #\d+: .*--ctstate DNAT -j MOAT-INGRESS {2}→ jump MOAT-INGRESS/,
    );
    expect(rendered).toMatch(
      /MOAT-INGRESS #\d+: .*--ctorigdstport 8080 -j DROP {2}→ DROP {2}\[firewall.yaml:5:9 web ingress rule 1\]/,
    );
  });
});
