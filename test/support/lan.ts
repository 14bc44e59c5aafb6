/**
 * Destinations for egress tests: a namespace linked to the Docker host's namespace by a veth
 * pair, holding addresses the test chose and a busybox httpd answering on port 80.
 */
import { spawn, spawnSync, type ChildProcess, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NetNs } from './netns.js';

const READY_TIMEOUT_MS = 10_000;

export class Destination {
  readonly ns: NetNs;
  private readonly servers: ChildProcess[] = [];
  private readonly docroot: string;

  /**
   * `hostAddress` (with prefix) goes on the host side, `addresses` (with prefix) on the
   * destination side; the destination routes everything back through the host. Returns once
   * httpd answers on every address (bounded wait); throws, having cleaned up, otherwise.
   */
  constructor(hostNs: NetNs, hostAddress: string, addresses: readonly string[]) {
    this.ns = NetNs.create('dst');
    this.docroot = mkdtempSync(join(tmpdir(), 'moat-www-'));
    try {
      const tag = randomBytes(3).toString('hex');
      const [a, b] = [`vh${tag}`, `vd${tag}`];
      // Created directly inside the namespaces: no name is ever taken in the machine's namespace.
      execFileSync('ip', ['-n', hostNs.name, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b], {
        stdio: 'pipe',
      });
      execFileSync('ip', ['-n', hostNs.name, 'link', 'set', b, 'netns', this.ns.name], {
        stdio: 'pipe',
      });
      hostNs.exec('ip', ['addr', 'add', hostAddress, 'dev', a]);
      hostNs.exec('ip', ['link', 'set', a, 'up']);
      for (const address of addresses) this.ns.exec('ip', ['addr', 'add', address, 'dev', b]);
      this.ns.exec('ip', ['link', 'set', b, 'up']);
      this.ns.exec('ip', ['route', 'add', 'default', 'via', hostAddress.split('/')[0] ?? '']);
      writeFileSync(join(this.docroot, 'index.html'), 'moat-test\n');
      // `ip netns exec` execs the command in place, so the child's pid is httpd's.
      const server = spawn(
        'ip',
        ['netns', 'exec', this.ns.name, 'busybox', 'httpd', '-f', '-p', '80', '-h', this.docroot],
        { stdio: 'ignore' },
      );
      server.on('error', () => undefined);
      this.servers.push(server);
      for (const address of addresses) this.waitServing(address.split('/')[0] ?? '');
    } catch (error) {
      this.destroy();
      throw error;
    }
  }

  private waitServing(address: string): void {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (let i = 0; i < 100 && Date.now() < deadline; i++) {
      const result = spawnSync(
        'ip',
        [
          'netns',
          'exec',
          this.ns.name,
          'curl',
          '-s',
          '-m',
          '1',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          `http://${address}/`,
        ],
        { encoding: 'utf8', timeout: 5_000 },
      );
      if (result.stdout.trim() === '200') return;
      spawnSync('sleep', ['0.1']);
    }
    throw new Error(`httpd in ${this.ns.name} did not answer on ${address}:80`);
  }

  destroy(): void {
    for (const server of this.servers) server.kill('SIGKILL');
    this.ns.destroy(); // takes the veth pair with it
    rmSync(this.docroot, { recursive: true, force: true });
  }
}
