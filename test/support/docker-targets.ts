/**
 * The Docker daemons the end-to-end tests run on: a release and the firewall backend it starts
 * with (a "target"). Each test file says which targets its scenarios need (`describeOnDocker`),
 * chosen so that every layout difference is covered once (docs/how-it-works.md has the table).
 * The targets themselves are in docker-releases.ts. MOAT_DOCKER narrows a run to some targets
 * (`MOAT_DOCKER=29.7.2-nftables`, comma-separated).
 */
import { describe, test } from '@jest/globals';
import { describeUnless, missingReason, type Prerequisite } from './prereq.js';
import {
  ALL_TARGETS,
  dockerBinDir,
  TARGETS,
  type DockerTarget,
  type TargetName,
} from './docker-releases.js';

export * from './docker-releases.js';

/** The targets MOAT_DOCKER selects among `wanted` (all of them when it is unset). */
export function selectedTargets(wanted: readonly TargetName[]): DockerTarget[] {
  const filter = process.env.MOAT_DOCKER?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = (filter ?? []).filter((name) => !(name in TARGETS));
  if (unknown.length > 0)
    throw new Error(
      `MOAT_DOCKER names unknown targets: ${unknown.join(', ')} (${ALL_TARGETS.join(', ')})`,
    );
  return wanted
    .filter((name) => filter === undefined || filter.includes(name))
    .map((n) => TARGETS[n]);
}

/**
 * One `describe` per target, titled `name [Docker <target>]`. A missing prerequisite or release
 * skips it with the reason, except under CI=true, where it fails.
 */
export function describeOnDocker(
  targets: readonly TargetName[],
  needs: readonly Prerequisite[],
  name: string,
  body: (target: DockerTarget) => void,
): void {
  const selected = selectedTargets(targets);
  // A file must hold a test: say which targets MOAT_DOCKER left out, as a skipped one.
  if (selected.length === 0)
    describe.skip(`${name} [Docker ${targets.join(', ')}: not in MOAT_DOCKER]`, () => {
      test.skip('not selected', () => undefined);
    });
  for (const docker of selected) {
    // The firewall dump of an nftables target includes `nft list ruleset`.
    let reason = missingReason(docker.firewallBackend === 'nftables' ? [...needs, 'nft'] : needs);
    if (reason === undefined) {
      try {
        dockerBinDir(docker.release);
      } catch (error) {
        reason = error instanceof Error ? error.message : String(error);
      }
    }
    describeUnless(reason, `${name} [Docker ${docker.name}]`, () => {
      body(docker);
    });
  }
}
