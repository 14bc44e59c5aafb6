/**
 * A Docker Engine API on a unix socket that answers with a snapshot's recorded answers
 * (docker-containers.json, docker-networks.json): the inventory side of the use-case unit tests.
 * The real dockerd is in test/docker/sandbox.test.ts and the end-to-end tests.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';

export interface FakeDockerApi {
  readonly env: { DOCKER_HOST: string };
  /** The path of every request, in order: how often moat asked the API. */
  readonly requests: readonly string[];
  close(): Promise<void>;
}

export async function serveSnapshot(
  snapshotDir: string,
  socketPath: string,
): Promise<FakeDockerApi> {
  const containers = readFileSync(join(snapshotDir, 'docker-containers.json'), 'utf8');
  const networks = readFileSync(join(snapshotDir, 'docker-networks.json'), 'utf8');
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '';
    requests.push(path);
    const body =
      path === '/version'
        ? JSON.stringify({ ApiVersion: '1.41', Version: '20.10.24' })
        : /^\/v[\d.]+\/containers\/json/.test(path)
          ? containers
          : /^\/v[\d.]+\/networks/.test(path)
            ? networks
            : undefined;
    res.writeHead(body === undefined ? 404 : 200, { 'Content-Type': 'application/json' });
    res.end(body ?? JSON.stringify({ message: `page not found: ${path}` }));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    env: { DOCKER_HOST: `unix://${socketPath}` },
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
