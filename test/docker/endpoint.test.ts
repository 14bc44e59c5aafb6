import { describe, expect, test } from '@jest/globals';
import { UserError } from '../../src/core/errors.js';
import { DEFAULT_DOCKER_SOCKET, resolveDockerEndpoint } from '../../src/docker/endpoint.js';

function userError(env: Record<string, string | undefined>): UserError {
  try {
    resolveDockerEndpoint(env);
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    return error as UserError;
  }
  throw new Error('expected a UserError');
}

describe('resolveDockerEndpoint', () => {
  test('without DOCKER_HOST, or with an empty one, the default socket', () => {
    expect(DEFAULT_DOCKER_SOCKET).toBe('/var/run/docker.sock');
    expect(resolveDockerEndpoint({})).toEqual({ socketPath: '/var/run/docker.sock' });
    expect(resolveDockerEndpoint({ DOCKER_HOST: '' })).toEqual({
      socketPath: '/var/run/docker.sock',
    });
    expect(resolveDockerEndpoint({ DOCKER_HOST: undefined }).socketPath).toBe(
      '/var/run/docker.sock',
    );
  });

  test('DOCKER_HOST=unix:///path is honoured', () => {
    expect(resolveDockerEndpoint({ DOCKER_HOST: 'unix:///tmp/x/docker.sock' })).toEqual({
      socketPath: '/tmp/x/docker.sock',
    });
    expect(
      resolveDockerEndpoint({ DOCKER_HOST: ' unix:///run/user/0/docker.sock ' }).socketPath,
    ).toBe('/run/user/0/docker.sock');
  });

  test.each(['tcp://127.0.0.1:2375', 'ssh://admin@box', 'npipe:////./pipe/docker_engine', 'fd://'])(
    '%s is refused as unsupported, naming the scheme',
    (host) => {
      const error = userError({ DOCKER_HOST: host });
      expect(error.message).toContain(host);
      expect(error.message).toContain('not supported');
      expect(error.message).toContain(`${host.split(':')[0]!}://`);
      expect(error.exitCode).toBe(1);
    },
  );

  test('a relative unix path or a bare word is a UserError too', () => {
    expect(userError({ DOCKER_HOST: 'unix://docker.sock' }).message).toContain('absolute');
    expect(userError({ DOCKER_HOST: '/var/run/docker.sock' }).message).toContain(
      'expected unix:///',
    );
  });
});
