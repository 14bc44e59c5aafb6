/**
 * Snapshots of real Docker hosts, one per target, kept under test/fixtures/snapshots/docker-<target>/:
 *
 *   state/         what `moat snapshot --out` wrote on that host
 *   firewall.yaml  a policy that changes what the host held
 *   plan.txt       `moat plan -f firewall.yaml` on the live host, as printed
 *   plan.json      `moat plan -f firewall.yaml --json` on the live host
 *
 * The e2e test on each target writes them when MOAT_UPDATE_SNAPSHOTS=1 (after checking that the
 * snapshot plans like the live host); test/host/snapshot-fixtures.test.ts checks that `plan
 * --snapshot` on each still prints exactly what the live host printed.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DockerTarget, TargetName } from './docker-targets.js';

export const SNAPSHOT_FIXTURES = resolve(import.meta.dirname, '../fixtures/snapshots');

export const fixtureDir = (target: TargetName): string =>
  join(SNAPSHOT_FIXTURES, `docker-${target}`);

export const updatingSnapshots = (): boolean => process.env.MOAT_UPDATE_SNAPSHOTS === '1';

/** Replaces the target's fixture with this snapshot, policy and live plans. */
export function writeSnapshotFixture(
  target: DockerTarget,
  snapshot: string,
  policy: string,
  plans: { text: string; json: string },
): void {
  const dir = fixtureDir(target.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(snapshot, join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'firewall.yaml'), policy);
  writeFileSync(join(dir, 'plan.txt'), plans.text);
  writeFileSync(join(dir, 'plan.json'), plans.json);
}

/** The fixture directories present, by name. */
export function snapshotFixtures(): string[] {
  return existsSync(SNAPSHOT_FIXTURES)
    ? readdirSync(SNAPSHOT_FIXTURES, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort()
    : [];
}
