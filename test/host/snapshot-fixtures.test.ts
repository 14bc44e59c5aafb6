/**
 * Offline plans of current hosts: for each Docker target, a snapshot of a real host of that
 * release and backend (test/fixtures/snapshots, taken by test/e2e/host-only.test.ts) plans with
 * `moat plan --snapshot` exactly as that live host planned: the same text and the same JSON.
 */
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_TARGETS } from '../support/docker-targets.js';
import { moat, type HostRunner } from '../support/moat-cli.js';
import { fixtureDir, snapshotFixtures } from '../support/snapshot-fixtures.js';
import { execFileSync } from 'node:child_process';

/** No namespace: `plan --snapshot` needs no root, no iptables and no Docker. */
const here: HostRunner = {
  execInHost(cmd, args, options) {
    try {
      const stdout = execFileSync(cmd, [...args], {
        encoding: 'utf8',
        env: { ...process.env, ...options?.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      return { stdout, stderr: '', status: 0 };
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; status?: number | null };
      return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', status: e.status ?? -1 };
    }
  },
};
// Nothing to reach: a plan from a snapshot must not ask any daemon.
const NO_DOCKER = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };

describe('snapshots of real hosts plan offline as the live host did', () => {
  test('there is one fixture per Docker target, and no other', () => {
    expect(snapshotFixtures()).toEqual(ALL_TARGETS.map((t) => `docker-${t}`).sort());
  });

  for (const target of ALL_TARGETS) {
    test(`Docker ${target}`, () => {
      const dir = fixtureDir(target);
      const args = ['plan', '-f', join(dir, 'firewall.yaml'), '--snapshot', join(dir, 'state')];
      const text = moat(here, args, NO_DOCKER);
      expect({ stderr: text.stderr, status: text.status }).toEqual({ stderr: '', status: 0 });
      expect(text.stdout).toBe(readFileSync(join(dir, 'plan.txt'), 'utf8'));
      const json = moat(here, [...args, '--json'], NO_DOCKER);
      expect(json.stdout).toBe(readFileSync(join(dir, 'plan.json'), 'utf8'));
      expect(text.stdout).toContain(`Docker ${target.replace('-nftables', '')}`);
    });
  }

  test('the nftables host kept its nft ruleset, and the plan says FORWARD is the hook', () => {
    const dir = fixtureDir('29.7.2-nftables');
    expect(readFileSync(join(dir, 'state', 'nftables-ruleset.json'), 'utf8')).toContain(
      '"docker-bridges"',
    );
    expect(readFileSync(join(dir, 'plan.txt'), 'utf8').split('\n')[0]).toBe(
      'Docker 29.7.2, firewall backend nftables; moat hooks FORWARD (no DOCKER-USER).',
    );
  });
});
