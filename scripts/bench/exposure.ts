/**
 * The exposure window after `docker run`, per Docker release, for `npm run bench`: starts a real
 * daemon in network namespaces (test/support/docker-sandbox.ts) and runs the measurements of
 * test/support/exposure.ts on it, which test/e2e/exposure.test.ts also asserts on.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DockerSandbox } from '../../test/support/docker-sandbox.js';
import { TARGETS, type TargetName } from '../../test/support/docker-releases.js';
import { measureExposure, type ExposureRow } from '../../test/support/exposure.js';
import { CLI, ROOT } from './scenario.js';

export type { ExposureRow } from '../../test/support/exposure.js';

export const EXPOSURE_TARGETS: readonly TargetName[] = ['20.10.24', '28.5.2', '29.7.2-nftables'];

/** Every measurement on one target, on a daemon started for it. */
export async function exposureScenario(
  name: TargetName,
  log: (text: string) => void,
): Promise<ExposureRow[]> {
  // Beside the repository, as the tests find it (their own lookup starts where this file is built).
  const script = [join(ROOT, '..'), join(ROOT, '..', '..')]
    .map((dir) => join(dir, 'shared', 'docker', 'release.sh'))
    .find((file) => existsSync(file));
  if (script !== undefined) process.env.MOAT_DOCKER_RELEASE_SH ??= script;
  const sandbox = await DockerSandbox.start({ target: TARGETS[name] });
  try {
    return await measureExposure(
      sandbox,
      { cli: CLI, prober: join(ROOT, 'test', 'support', 'prober.mjs') },
      (row) => {
        log(
          `  ${row.target} ${row.moat}, ${row.case} (${row.family}): leaked ${row.leaked}, window ${row.windowMs} ms`,
        );
      },
    );
  } finally {
    await sandbox.stop();
  }
}
