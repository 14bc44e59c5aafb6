/**
 * A fake Docker Engine API on a unix socket: just the calls moat makes (src/docker/inventory.ts:
 * GET /_ping, whose headers name the API version and release as a real daemon's do, then
 * /vX/containers/json and /vX/networks), answered from a generated inventory, and the event
 * stream `moat watch` follows (GET /events, kept open; quiet unless the benchmark emits an
 * event). The benchmark measures moat, not dockerd.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { BenchInventory } from './host.js';
import { containersAnswer, networksAnswer } from './host.js';

export const FAKE_API_VERSION = '1.43';

export class FakeDockerApi {
  private constructor(
    private readonly server: Server,
    readonly socketPath: string,
    private readonly answers: { containers: string; networks: string },
    private readonly streams: Set<ServerResponse>,
  ) {}

  /** Listens on `<dir>/docker.sock` and answers with `inventory` (replace it with serve()). */
  static async start(dir: string, inventory: BenchInventory): Promise<FakeDockerApi> {
    const answers = { containers: '[]', networks: '[]' };
    const streams = new Set<ServerResponse>();
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const send = (status: number, body: string, type = 'application/json'): void => {
        res.writeHead(status, {
          'Content-Type': type,
          'Api-Version': FAKE_API_VERSION,
          Server: 'Docker/24.0.9 (linux)',
        });
        res.end(body);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') send(405, '{"message":"method"}');
      else if (path === '/_ping' || /^\/v[\d.]+\/_ping$/.test(path)) send(200, 'OK', 'text/plain');
      else if (path === '/version' || /^\/v[\d.]+\/version$/.test(path))
        send(
          200,
          JSON.stringify({
            Version: '24.0.9',
            ApiVersion: FAKE_API_VERSION,
            MinAPIVersion: '1.12',
            Os: 'linux',
            Arch: 'amd64',
          }),
        );
      else if (/^\/v[\d.]+\/containers\/json$/.test(path)) send(200, answers.containers);
      else if (/^\/v[\d.]+\/networks$/.test(path)) send(200, answers.networks);
      else if (path === '/events' || /^\/v[\d.]+\/events$/.test(path)) {
        // The event stream `moat watch` follows: open, and quiet (the inventory never changes).
        res.writeHead(200, { 'Content-Type': 'application/json', 'Api-Version': FAKE_API_VERSION });
        res.flushHeaders();
        streams.add(res);
        res.on('close', () => streams.delete(res));
      } else send(404, JSON.stringify({ message: `page not found: ${path}` }));
    });
    const socketPath = join(dir, 'docker.sock');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, resolve);
    });
    const api = new FakeDockerApi(server, socketPath, answers, streams);
    api.serve(inventory);
    return api;
  }

  serve(inventory: BenchInventory): void {
    this.answers.containers = JSON.stringify(containersAnswer(inventory));
    this.answers.networks = JSON.stringify(networksAnswer(inventory));
  }

  /** Sends one event (`{Type, Action, Actor: {Attributes: {name}}}`) to every open stream. */
  emit(type: string, action: string, name: string): void {
    const now = Date.now();
    const event = {
      Type: type,
      Action: action,
      Actor: { ID: name, Attributes: { name } },
      time: Math.floor(now / 1000),
      timeNano: now * 1_000_000,
    };
    for (const stream of this.streams) stream.write(JSON.stringify(event) + '\n');
  }

  close(): Promise<void> {
    for (const stream of this.streams) stream.end();
    return new Promise((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }
}
