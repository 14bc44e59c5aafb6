/**
 * The adapter against a scripted Engine API on a real unix socket: version negotiation, daemon
 * errors, garbage, silence, and missing or dead sockets. The real dockerd is in sandbox.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { MoatError, UserError } from '../../src/core/errors.js';
import { negotiateApiVersion, readInventory } from '../../src/docker/inventory.js';
import { describeWith } from '../support/prereq.js';

type Handler = (path: string, res: ServerResponse) => void;

const CONTAINERS = [
  {
    Id: 'c1',
    Names: ['/ghost'],
    Labels: { 'com.docker.compose.service': 'ghost' },
    State: 'running',
    Ports: [{ IP: '0.0.0.0', PrivatePort: 2368, PublicPort: 2368, Type: 'tcp' }],
    NetworkSettings: { Networks: { bridge: { NetworkID: 'n1', IPAddress: '172.17.0.2' } } },
  },
];
const NETWORKS = [{ Id: 'n1', Name: 'bridge', Driver: 'bridge', IPAM: { Config: [] } }];

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

/**
 * A well-behaved daemon speaking `apiVersion`; records the paths it was asked for. Like real
 * daemons, it reports FirewallBackend only to clients speaking 1.49 or later.
 */
function daemon(apiVersion: string, seen: string[], firewallBackend = 'nftables'): Handler {
  return (path, res) => {
    seen.push(path);
    if (path === '/version') {
      json(res, 200, { ApiVersion: apiVersion, Version: 'x' });
      return;
    }
    const info = /^\/v1\.(\d+)\/info$/.exec(path);
    if (info !== null) {
      const backend = Number(info[1]) >= 49 ? { FirewallBackend: { Driver: firewallBackend } } : {};
      json(res, 200, { ServerVersion: '99.0.0', Name: 'secret-host', ...backend });
      return;
    }
    if (path.endsWith('/containers/json')) {
      json(res, 200, CONTAINERS);
      return;
    }
    if (path.endsWith('/networks')) {
      json(res, 200, NETWORKS);
      return;
    }
    json(res, 404, { message: `page not found: ${path}` });
  };
}

describe('readInventory against a scripted Engine API', () => {
  let dir: string;
  const servers: Server[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moat-api-'));
  });

  afterAll(async () => {
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function serve(handler: Handler): Promise<string> {
    const socketPath = join(dir, `api-${servers.length}.sock`);
    const server = createServer((req, res) => {
      handler(req.url ?? '', res);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    return socketPath;
  }

  async function failure(socketPath: string, timeoutMs = 2000): Promise<MoatError> {
    try {
      await readInventory({ socketPath }, { timeoutMs });
    } catch (error) {
      expect(error).toBeInstanceOf(MoatError);
      return error as MoatError;
    }
    throw new Error('expected readInventory to fail');
  }

  test('an older daemon is spoken to in its own version', async () => {
    const seen: string[] = [];
    const inventory = await readInventory({ socketPath: await serve(daemon('1.41', seen)) });
    // Its ping says nothing (404 here): /version tells the API version and the release. Before
    // API 1.49 there is no FirewallBackend to ask /info for: such a daemon only has iptables.
    expect(seen.sort()).toEqual([
      '/_ping',
      '/v1.41/containers/json',
      '/v1.41/networks',
      '/version',
    ]);
    expect(inventory.daemon).toEqual({ version: 'x', firewallBackend: 'iptables' });
    expect(inventory.containers.map((c) => [c.name, c.labels, c.ports[0]?.hostPort])).toEqual([
      ['ghost', { 'com.docker.compose.service': 'ghost' }, 2368],
    ]);
    expect(inventory.networks[0]?.bridge).toBe('docker0');
  });

  test("Docker 29's routed bindings, missing from the list, are read from the container's own answer", async () => {
    const seen: string[] = [];
    const routedNetwork = {
      Id: 'n2',
      Name: 'routed',
      Driver: 'bridge',
      IPAM: { Config: [{ Subnet: '172.28.0.0/24' }] },
      Options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'routed' },
    };
    const onRouted = (id: string, name: string) => ({
      Id: id,
      Names: [`/${name}`],
      State: 'running',
      Ports: [],
      NetworkSettings: { Networks: { routed: { NetworkID: 'n2', IPAddress: '172.28.0.2' } } },
    });
    // What 29.7.2 answers for `-p 8080:80` on that network (measured).
    const inspected = {
      NetworkSettings: {
        Ports: {
          '80/tcp': [
            { HostIp: '0.0.0.0', HostPort: '' },
            { HostIp: '::', HostPort: '' },
          ],
        },
      },
    };
    const socketPath = await serve((path, res) => {
      seen.push(path);
      if (path === '/v1.43/containers/json')
        json(res, 200, [...CONTAINERS, onRouted('r1', 'web'), onRouted('gone', 'gone')]);
      else if (path === '/v1.43/networks') json(res, 200, [...NETWORKS, routedNetwork]);
      else if (path === '/v1.43/containers/r1/json') json(res, 200, inspected);
      else if (path === '/_ping' || path === '/v1.43/containers/gone/json')
        json(res, 404, { message: 'no such container' });
      else if (path === '/version') json(res, 200, { ApiVersion: '1.43', Version: '29.7.2' });
      else json(res, 404, { message: path });
    });
    const inventory = await readInventory({ socketPath });
    // Only the containers on the routed network are asked about; one removed meanwhile is skipped.
    expect(seen.filter((p) => /containers\/[^/]+\/json$/.test(p)).sort()).toEqual([
      '/v1.43/containers/gone/json',
      '/v1.43/containers/r1/json',
    ]);
    const web = inventory.containers.find((c) => c.name === 'web');
    expect(web?.ports).toEqual([
      { hostIp: '0.0.0.0', containerPort: 80, protocol: 'tcp' },
      { hostIp: '::', containerPort: 80, protocol: 'tcp' },
    ]);
    expect(inventory.containers.find((c) => c.name === 'ghost')?.ports[0]?.hostPort).toBe(2368);
  });

  test('a newer daemon is spoken to in the newest version moat knows', async () => {
    const seen: string[] = [];
    const inventory = await readInventory({ socketPath: await serve(daemon('1.55', seen)) });
    expect(seen).toContain('/v1.43/containers/json');
    // /info is asked in the version that carries the firewall backend, and it is read.
    expect(seen).toContain('/v1.49/info');
    expect(inventory.daemon).toEqual({ version: '99.0.0', firewallBackend: 'nftables' });
  });

  test("a ping's headers are enough: /version, slow on real daemons, is never asked", async () => {
    const seen: string[] = [];
    const answers = daemon('1.55', seen);
    const socketPath = await serve((path, res) => {
      if (path !== '/_ping') {
        answers(path, res);
        return;
      }
      seen.push(path);
      res.writeHead(200, { 'Api-Version': '1.55', Server: 'Docker/29.7.2 (linux)' });
      res.end('OK');
    });
    const inventory = await readInventory({ socketPath });
    expect(seen.sort()).toEqual([
      '/_ping',
      '/v1.43/containers/json',
      '/v1.43/networks',
      '/v1.49/info',
    ]);
    expect(inventory.daemon).toEqual({ version: '99.0.0', firewallBackend: 'nftables' });

    const old: string[] = [];
    const oldAnswers = daemon('1.41', old);
    const oldSocket = await serve((path, res) => {
      if (path !== '/_ping') {
        oldAnswers(path, res);
        return;
      }
      res.writeHead(200, { 'Api-Version': '1.41', Server: 'Docker/20.10.24+dfsg1 (linux)' });
      res.end('OK');
    });
    expect((await readInventory({ socketPath: oldSocket })).daemon).toEqual({
      version: '20.10.24+dfsg1',
      firewallBackend: 'iptables',
    });
    expect(old.sort()).toEqual(['/v1.41/containers/json', '/v1.41/networks']);
  });

  test('an /info without ServerVersion is a docker-api MoatError', async () => {
    const socketPath = await serve((path, res) => {
      if (path === '/version') json(res, 200, { ApiVersion: '1.55' });
      else if (path.endsWith('/info')) json(res, 200, { FirewallBackend: { Driver: 'nftables' } });
      else json(res, 200, []);
    });
    const error = await failure(socketPath);
    expect(error.code).toBe('docker-api');
    expect(error.message).toContain('ServerVersion');
  });

  test('negotiation: the lower of the two; unreadable or ancient versions are refused', () => {
    expect(negotiateApiVersion('1.41')).toBe('1.41');
    expect(negotiateApiVersion('1.43')).toBe('1.43');
    expect(negotiateApiVersion('1.100')).toBe('1.43');
    expect(negotiateApiVersion('1.24')).toBe('1.24');
    expect(() => negotiateApiVersion('1.9')).toThrow(UserError);
    expect(negotiateApiVersion('2.0')).toBe('1.43');
    expect(() => negotiateApiVersion('banana')).toThrow(MoatError);
    expect(negotiateApiVersion('1.55', '1.49')).toBe('1.49');
    expect(negotiateApiVersion('1.41', '1.49')).toBe('1.41');
  });

  test('an HTTP error from the daemon is a UserError naming the socket, status and message', async () => {
    const socketPath = await serve((path, res) => {
      if (path === '/version') json(res, 200, { ApiVersion: '1.41' });
      else json(res, 500, { message: 'containerd is not running' });
    });
    const error = await failure(socketPath);
    expect(error).toBeInstanceOf(UserError);
    expect(error.exitCode).toBe(1);
    expect(error.message).toContain(socketPath);
    expect(error.message).toContain('500');
    expect(error.message).toContain('containerd is not running');
  });

  test('truncated JSON is a docker-api MoatError, not a SyntaxError', async () => {
    const socketPath = await serve((path, res) => {
      if (path === '/version') {
        json(res, 200, { ApiVersion: '1.41' });
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(CONTAINERS).slice(0, 40));
    });
    const error = await failure(socketPath);
    expect(error.code).toBe('docker-api');
    expect(error.message).toContain('not JSON');
  });

  test('an answer broken off midway is a UserError, not a raw socket error', async () => {
    const socketPath = await serve((path, res) => {
      if (path === '/version') {
        json(res, 200, { ApiVersion: '1.41' });
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '100000' });
      res.write('[{"Id":');
      setTimeout(() => res.destroy(), 20);
    });
    const error = await failure(socketPath);
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toContain('broke off');
    expect(error.message).toContain(socketPath);
  });

  test('a /version without ApiVersion is a docker-api MoatError', async () => {
    const error = await failure(
      await serve((_, res) => {
        json(res, 200, { Version: '1' });
      }),
    );
    expect(error.code).toBe('docker-api');
    expect(error.message).toContain('ApiVersion');
  });

  test('a daemon that never answers times out with a UserError', async () => {
    const socketPath = await serve(() => {
      // accept the request, never answer
    });
    const started = Date.now();
    const error = await failure(socketPath, 300);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toContain('did not answer');
    expect(error.message).toContain(socketPath);
  });

  test('a missing socket: a UserError naming it and what to check', async () => {
    const socketPath = join(dir, 'nothing-here.sock');
    const error = await failure(socketPath);
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toContain(socketPath);
    expect(error.message).toContain('does not exist');
    expect(error.message).toContain('Is dockerd running?');
    expect(error.message).toContain('DOCKER_HOST');
  });

  test('a socket nobody listens on: a UserError', async () => {
    // A bound unix socket whose server is closed without unlinking leaves a stale socket file.
    const socketPath = join(dir, 'stale.sock');
    const server = createNetServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    // Keep the file: copy the socket inode by hard link before the server removes it on close.
    execFileSync('ln', [socketPath, `${socketPath}.kept`]);
    await new Promise((resolve) => server.close(resolve));
    const error = await failure(`${socketPath}.kept`);
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toContain('nothing listens');
    expect(error.message).toContain(`${socketPath}.kept`);
  });

  test('a path that is a plain file, not a socket: a UserError', async () => {
    const file = join(dir, 'plain-file');
    writeFileSync(file, 'x');
    const error = await failure(file);
    expect(error).toBeInstanceOf(UserError);
    expect(error.message).toContain(file);
  });
});

describeWith(['root'], 'readInventory without permission on the socket', () => {
  test('permission denied is a UserError naming the socket and the docker group', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-api-perm-'));
    const socketPath = join(dir, 'docker.sock');
    const server = createServer((_, res) => {
      json(res, 200, { ApiVersion: '1.41' });
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    chmodSync(dir, 0o755);
    chmodSync(socketPath, 0o600);
    let error: unknown;
    // Connect as nobody, the way a user outside the docker group would; root again right after.
    process.seteuid!(65534);
    try {
      error = await readInventory({ socketPath }, { timeoutMs: 2000 }).catch((e: unknown) => e);
    } finally {
      process.seteuid!(0);
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(error).toBeInstanceOf(UserError);
    expect((error as UserError).message).toContain('permission denied');
    expect((error as UserError).message).toContain(socketPath);
    expect((error as UserError).message).toContain('docker group');
  });
});
