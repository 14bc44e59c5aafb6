/**
 * The plan's reach sentences put to the packet-path evaluator (issue 14.3): on the bundled
 * snapshots every example's sentences hold; a foreign rule that lets packets past moat, or
 * drops what the plan calls open, is named next to the plan's words.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { desiredAndPlan, withListenerNames } from '../../src/app/context.js';
import { worldAfterPlan } from '../../src/explain/after-plan.js';
import { contradictionWords, crossCheck } from '../../src/explain/cross-check.js';
import { readSnapshot } from '../../src/host/snapshot.js';
import { readWorldFromSnapshot } from '../../src/host/world.js';
import { parsePolicy } from '../../src/policy/parse.js';

const EXAMPLES = new URL('../../examples/', import.meta.url).pathname;

async function contradictions(snapshot: string, policyText: string): Promise<string[]> {
  const policy = parsePolicy(policyText, 'firewall.yaml').policy;
  if (policy === undefined) throw new Error('invalid policy');
  const [state, world] = await Promise.all([
    readSnapshot(snapshot),
    readWorldFromSnapshot(snapshot),
  ]);
  const named = await withListenerNames(policy, state.system ?? {});
  const { plan } = desiredAndPlan(policy, state.inventory, state.live, named);
  const checked = crossCheck(worldAfterPlan(world, plan), plan.exposures, plan.glossary);
  expect(checked.skipped).toEqual([]);
  return checked.contradictions.map(contradictionWords);
}

/** A copy of a bundled snapshot with `edit` applied to one of its files (iptables-save.txt). */
function editedSnapshot(
  name: string,
  edit: (text: string) => string,
  fileName = 'iptables-save.txt',
): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-crosscheck-'));
  cpSync(join(EXAMPLES, name), dir, { recursive: true });
  const file = join(dir, fileName);
  writeFileSync(file, edit(readFileSync(file, 'utf8')));
  return dir;
}

/** Puts `rule` (without `-A FORWARD`) first in the filter table's FORWARD chain. */
const firstInForward = (rule: string) => (save: string) =>
  save.replace(/^-A FORWARD /m, `-A FORWARD ${rule}\n-A FORWARD `);

const HOST_ONLY = readFileSync(join(EXAMPLES, 'host-only-port/firewall.yaml'), 'utf8');

describe('cross-check on the bundled snapshots', () => {
  test.each([
    ['snapshot-docker-20.10', 'host-only-port'],
    ['snapshot-docker-20.10', 'internal-network-blocked'],
    ['snapshot-docker-20.10', 'egress-allowlist-ipset'],
    ['snapshot-docker-20.10', 'office-only-admin-external-ipset'],
    ['snapshot-docker-20.10', 'compose-labels'],
    ['snapshot-docker-28.5.2', 'ci'],
  ])('%s with examples/%s: every sentence holds', async (snapshot, example) => {
    const text = readFileSync(join(EXAMPLES, example, 'firewall.yaml'), 'utf8');
    expect(await contradictions(join(EXAMPLES, snapshot), text)).toEqual([]);
  });
});

describe('a foreign rule the plan cannot see past', () => {
  const dirs: string[] = [];
  afterAll(() => {
    dirs.forEach((d) => {
      rmSync(d, { recursive: true, force: true });
    });
  });
  const edited = (edit: (save: string) => string): string => {
    const dir = editedSnapshot('snapshot-docker-20.10', edit);
    dirs.push(dir);
    return dir;
  };

  test('an ACCEPT in FORWARD before DOCKER-USER: "host only" is contradicted, naming the rule', async () => {
    const dir = edited(firstInForward('-d 172.16.0.0/12 -j ACCEPT'));
    const found = await contradictions(dir, HOST_ONLY);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(
      /^ghost 2368\/tcp over IPv4: the plan says host only, yet [0-9a-f.:]+ gets in/,
    );
    expect(found[0]).toContain('decided by filter FORWARD #1: -d 172.16.0.0/12 -j ACCEPT');
  });

  test('the same ACCEPT placed after DOCKER-USER contradicts nothing: moat decides first', async () => {
    const dir = edited((save) =>
      save.replace(/^(-A FORWARD -j DOCKER-USER\n)/m, '$1-A FORWARD -d 172.16.0.0/12 -j ACCEPT\n'),
    );
    expect(await contradictions(dir, HOST_ONLY)).toEqual([]);
  });

  test('a DROP in FORWARD of a block the policy lets in: "reachable from" it is contradicted', async () => {
    const policy = HOST_ONLY.replace(/from: \[host\]/, 'from: [host, 203.0.113.0/24]');
    expect(policy).not.toBe(HOST_ONLY);
    const dir = edited(firstInForward('-s 203.0.113.0/24 -j DROP'));
    const found = await contradictions(dir, policy);
    expect(found).toEqual([
      expect.stringMatching(
        /^ghost 2368\/tcp over IPv4: the plan says host, 203\.0\.113\.0\/24, yet 203\.0\.113\.0\/24 is dropped .*decided by filter FORWARD #1: -s 203\.0\.113\.0\/24 -j DROP\)$/,
      ),
    ]);
  });

  test('a port open to anyone that a foreign rule drops', async () => {
    const policy = HOST_ONLY.replace(/from: \[host\]/, 'from: [any]');
    const dir = edited(firstInForward('-d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j DROP'));
    const found = await contradictions(dir, policy);
    expect(found).toEqual([
      expect.stringMatching(
        /^ghost 2368\/tcp over IPv4: the plan says anyone, yet anyone \(e\.g\. [^)]*\) is dropped .*decided by filter FORWARD #1/,
      ),
    ]);
  });
});

test('a time budget: ports whose words change are checked first, the rest are named as skipped', async () => {
  const snapshot = join(EXAMPLES, 'snapshot-docker-20.10');
  const policy = parsePolicy(HOST_ONLY, 'firewall.yaml').policy;
  if (policy === undefined) throw new Error('invalid policy');
  const [state, world] = await Promise.all([
    readSnapshot(snapshot),
    readWorldFromSnapshot(snapshot),
  ]);
  const { plan } = desiredAndPlan(policy, state.inventory, state.live, state.system ?? {});
  let asked = 0;
  const checked = crossCheck(worldAfterPlan(world, plan), plan.exposures, plan.glossary, () => {
    asked += 1;
    return asked <= 1;
  });
  expect(plan.exposures.length).toBeGreaterThan(2);
  expect(checked.skipped).toHaveLength(plan.exposures.length - 1);
  expect(checked.skipped).not.toContain('ghost 2368/tcp'); // the one port whose words change
});

test("a routed network's own members are not the outside clients the plan's words are about", async () => {
  const dir = editedSnapshot(
    'snapshot-docker-28.5.2',
    (json) => {
      const networks = JSON.parse(json) as { Name: string; Options: Record<string, string> }[];
      for (const n of networks)
        if (n.Name === 'appnet')
          n.Options = { 'com.docker.network.bridge.gateway_mode_ipv4': 'routed' };
      return JSON.stringify(networks);
    },
    'docker-networks.json',
  );
  try {
    const policy =
      'version: 1\ncontainers:\n  api:\n    ingress:\n      - ports: [80/tcp]\n        from: [203.0.113.7]\n';
    const found = await contradictions(dir, policy);
    expect(found.filter((c) => c.includes('gets in'))).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
