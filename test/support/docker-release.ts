/**
 * Other Docker Engine releases than the one on PATH, for tests that must hold on several:
 * the machine's release script (MOAT_DOCKER_RELEASE_SCRIPT, by default the shared one) makes a
 * release available and names the directory holding its dockerd and docker-proxy.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const SCRIPT = process.env.MOAT_DOCKER_RELEASE_SCRIPT ?? '/work/shared/docker/release.sh';

/**
 * The bin directory of a release (undefined for the dockerd on PATH), or an Error saying why it
 * is not available here.
 */
export function dockerRelease(version: string): { binDir: string | undefined } | Error {
  if (version.startsWith('20.10')) return { binDir: undefined };
  if (!existsSync(SCRIPT))
    return new Error(`no Docker release script at ${SCRIPT} (MOAT_DOCKER_RELEASE_SCRIPT)`);
  const result = spawnSync('bash', [SCRIPT, version], { encoding: 'utf8', timeout: 600_000 });
  const root = result.stdout.trim();
  if (result.status !== 0 || root === '')
    return new Error(
      `Docker ${version} is not available: ${result.stderr.trim() || `exit ${result.status ?? 'signal'}`}`,
    );
  return { binDir: join(root, 'usr', 'sbin') };
}
