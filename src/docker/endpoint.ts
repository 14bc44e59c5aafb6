/** Where the Docker Engine API listens, from DOCKER_HOST (pure: the environment is passed in). */
import { UserError } from '../core/errors.js';

export interface DockerEndpoint {
  readonly socketPath: string;
}

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

export function resolveDockerEndpoint(
  env: Readonly<Record<string, string | undefined>>,
): DockerEndpoint {
  const host = env.DOCKER_HOST?.trim() ?? '';
  // Docker's own clients treat an empty DOCKER_HOST as unset.
  if (host === '') return { socketPath: DEFAULT_DOCKER_SOCKET };
  if (host.startsWith('unix://')) {
    const socketPath = host.slice('unix://'.length);
    if (!socketPath.startsWith('/'))
      throw new UserError(
        `DOCKER_HOST=${host}: the socket path must be absolute (unix:///run/docker.sock)`,
        'docker-host',
      );
    return { socketPath };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(host)?.[1]?.toLowerCase();
  if (scheme !== undefined)
    throw new UserError(
      `DOCKER_HOST=${host}: moat reads Docker only over a local unix socket; ${scheme}:// is not supported. ` +
        'Run moat on the Docker host itself, with DOCKER_HOST unset or unix:///path/to/docker.sock.',
      'docker-host',
    );
  throw new UserError(
    `DOCKER_HOST=${host} is not a Docker address; expected unix:///path/to/docker.sock`,
    'docker-host',
  );
}
