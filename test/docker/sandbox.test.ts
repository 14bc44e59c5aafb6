/**
 * A real dockerd in its own network namespace, on three Docker targets: the inventory adapter
 * reads it, the outside client reaches a published port over IPv4 and (through docker-proxy)
 * IPv6, the harness's reach probe tells the published path from direct access, and stop()
 * leaves nothing.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { UserError } from '../../src/core/errors.js';
import { resolveDockerEndpoint } from '../../src/docker/endpoint.js';
import { readInventory } from '../../src/docker/inventory.js';
import type { DockerContainer, Inventory } from '../../src/docker/model.js';
import { DockerSandbox, HOST_V4, HOST_V6 } from '../support/docker-sandbox.js';
import { describeOnDocker } from '../support/docker-targets.js';
import { Lab } from '../support/lab.js';
import { describeWith } from '../support/prereq.js';

const reached = (status: string): boolean => status !== '000';

function container(inventory: Inventory, name: string): DockerContainer {
  const found = inventory.containers.find((c) => c.name === name);
  if (found === undefined) throw new Error(`${name} not in the inventory`);
  return found;
}

/** The test namespaces (NetNs names them `moatt-…`); other programs' come and go meanwhile. */
function namespaces(): string[] {
  return existsSync('/var/run/netns')
    ? readdirSync('/var/run/netns').filter((n) => n.startsWith('moatt-'))
    : [];
}

/** Pids of processes in the network namespace with this inode, or mentioning `marker`. */
function processesOf(inode: number | undefined, marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const ns = readlinkSync(`/proc/${pid}/ns/net`);
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (ns === `net:[${inode}]` || cmdline.includes(marker)) found.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

// 20.10's layout lets a neighbour reach a container's address directly, 28's raw table drops
// it, and the nftables backend has its own: the harness's probe is checked against all three.
describeOnDocker(
  ['20.10.24', '28.5.2', '29.7.2-nftables'],
  ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl'],
  'DockerSandbox and readInventory',
  (target) => {
    let lab: Lab | undefined;
    let box: DockerSandbox;
    let inventory: Inventory;
    let hostInode: number | undefined;

    beforeAll(async () => {
      const started = Date.now();
      lab = await new Lab({ target }).start();
      box = lab.sandbox;
      console.log(`Docker ${target.name}: DockerSandbox.start took ${Date.now() - started} ms`);
      hostInode = statSync(box.host.path).ino;
      box.runHttpd('ghost', ['2368:2368']);
      box.docker(['network', 'create', '--subnet', '172.30.0.0/24', 'appnet']);
      box.runHttpd('api', ['127.0.0.1:8080:80'], ['--network', 'appnet', '--label', 'fw.role=api']);
      inventory = await readInventory(resolveDockerEndpoint(box.env), { timeoutMs: 10_000 });
    }, 180_000);

    afterAll(async () => {
      await lab?.stop();
    }, 120_000);

    test('the sandbox publishes its socket through DOCKER_HOST', () => {
      expect(box.env).toEqual({ DOCKER_HOST: `unix://${box.socketPath}` });
      expect(box.socketPath.startsWith(box.dir)).toBe(true);
    });

    test('readInventory lists the running containers with their ports, labels and addresses', () => {
      expect(inventory.containers.map((c) => c.name)).toEqual(['api', 'ghost']);

      const ghost = container(inventory, 'ghost');
      expect(ghost.state).toBe('running');
      expect(ghost.ports).toContainEqual({
        hostIp: '0.0.0.0',
        hostPort: 2368,
        containerPort: 2368,
        protocol: 'tcp',
      });
      expect(ghost.attachments.map((a) => a.network)).toEqual(['bridge']);
      expect(ghost.attachments[0]!.ipv4).toMatch(/^172\.17\.0\.\d+$/);
      expect(ghost.attachments[0]!.ipv6).toBeUndefined();

      const api = container(inventory, 'api');
      expect(api.labels).toEqual({ 'fw.role': 'api' });
      expect(api.ports).toEqual([
        { hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      ]);
      expect(api.attachments.map((a) => a.network)).toEqual(['appnet']);
      expect(api.attachments[0]!.ipv4).toMatch(/^172\.30\.0\.\d+$/);
    });

    test('the ids match the daemon, and the bridge names are the interfaces in the host namespace', () => {
      const ghostId = box.docker(['inspect', '--format', '{{.Id}}', 'ghost']).trim();
      expect(container(inventory, 'ghost').id).toBe(ghostId);

      const appnet = inventory.networks.find((n) => n.name === 'appnet');
      const bridge = inventory.networks.find((n) => n.name === 'bridge');
      expect(bridge).toMatchObject({ driver: 'bridge', bridge: 'docker0', internal: false });
      expect(appnet).toMatchObject({ driver: 'bridge', subnets: ['172.30.0.0/24'] });
      expect(appnet!.bridge).toBe(`br-${appnet!.id.slice(0, 12)}`);
      expect(container(inventory, 'api').attachments[0]!.networkId).toBe(appnet!.id);

      for (const name of [bridge!.bridge!, appnet!.bridge!]) {
        const link = box.execInHost('ip', ['-o', 'link', 'show', 'dev', name]);
        expect(link.status).toBe(0);
      }
    });

    test('the outside client reaches ghost over IPv4 and, through docker-proxy, over IPv6', () => {
      expect(reached(box.httpStatusFromWan(`http://${HOST_V4}:2368/`))).toBe(true);
      expect(reached(box.httpStatusFromWan(`http://[${HOST_V6}]:2368/`))).toBe(true);
      // A port nobody published is not reached: the check can fail.
      expect(box.httpStatusFromWan(`http://${HOST_V4}:2369/`)).toBe('000');
    });

    test('api is published on loopback only: the host reaches it, the outside does not', () => {
      expect(reached(box.httpStatusFromHost('http://127.0.0.1:8080/'))).toBe(true);
      expect(box.httpStatusFromWan(`http://${HOST_V4}:8080/`)).toBe('000');
    });

    test("reach() tells the published path from direct access to the container's address", async () => {
      const ghost = await lab!.reach('ghost', 2368);
      expect(ghost.published).toEqual({ ipv4: true, ipv6: true });
      // The wan routes to the bridge subnets through the host. Docker 28 drops direct access to
      // a container's address in nat mode (raw PREROUTING); before, the neighbour got through.
      expect(ghost.direct).toEqual({ ipv4: !target.dockerForward });
      // Published on loopback: the wan tries the host's own address, and is refused.
      const api = await lab!.reach('api', 80);
      expect(api.published).toEqual({ ipv4: false });
      expect(api.probes.map((p) => p.url)).toContain(`http://${HOST_V4}:8080/`);
    });

    // The harness for gateway modes (Docker 27+): networks made with them, and the paths a
    // neighbour has to a container there, before any policy.
    if (target.gatewayModes)
      test('createNetwork makes routed and nat-unprotected networks; reach() sees their open paths', async () => {
        lab!.createNetwork('routed', {
          subnet4: '172.28.0.0/24',
          subnet6: '2001:db8:28::/64',
          gatewayMode4: 'routed',
          gatewayMode6: 'routed',
        });
        lab!.createNetwork('unprot', {
          subnet4: '172.27.0.0/24',
          subnet6: '2001:db8:27::/64',
          gatewayMode4: 'nat-unprotected',
          gatewayMode6: 'nat-unprotected',
        });
        const options = box.docker([
          'network',
          'inspect',
          '--format',
          '{{json .Options}}',
          'routed',
        ]);
        expect(JSON.parse(options)).toMatchObject({
          'com.docker.network.bridge.gateway_mode_ipv4': 'routed',
          'com.docker.network.bridge.gateway_mode_ipv6': 'routed',
        });
        lab!.runHttpd('routed-web', ['8091:80'], ['--network', 'routed'], 80);
        lab!.runHttpd('unprot-web', ['8092:80'], ['--network', 'unprot'], 80);
        // No NAT: the container's own addresses are reached from the wan, over both families.
        const routed = await lab!.reach('routed-web', 80);
        expect(routed.direct).toEqual({ ipv4: true, ipv6: true });
        const unprotected = await lab!.reach('unprot-web', 80);
        expect(unprotected.published).toMatchObject({ ipv4: true });
        expect(unprotected.direct).toEqual({ ipv4: true, ipv6: true });
      });

    test('execInHost runs in the host namespace and passes env and input', () => {
      const result = box.execInHost(
        'sh',
        ['-c', 'read line; echo "$line $MOAT_X"; ip -o addr show dev vd0'],
        {
          input: 'hello\n',
          env: { MOAT_X: 'there' },
        },
      );
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('hello there');
      expect(result.stdout).toContain(`${HOST_V4}/24`);
      expect(box.execInHost('sh', ['-c', 'exit 3']).status).toBe(3);
    });

    test('readInventory against a missing socket names it and what to check', async () => {
      const socketPath = join(box.dir, 'missing.sock');
      const error = await readInventory({ socketPath }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UserError);
      expect((error as UserError).message).toContain(socketPath);
      expect((error as UserError).message).toContain('Is dockerd running?');
    });

    test('stop() removes every namespace, process, mount and file of the sandbox; twice is fine', async () => {
      const { dir } = box;
      const names = [box.host.name, box.wan.name];
      expect(processesOf(hostInode, dir).length).toBeGreaterThan(0);
      const started = Date.now();
      await box.stop();
      console.log(`DockerSandbox.stop took ${Date.now() - started} ms`);
      await box.stop();

      expect(existsSync(dir)).toBe(false);
      expect(namespaces().filter((n) => names.includes(n))).toEqual([]);
      expect(processesOf(hostInode, dir)).toEqual([]);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(dir);

      // The daemon is gone: its old socket path is now a missing socket.
      const error = await readInventory(resolveDockerEndpoint(box.env), { timeoutMs: 2000 }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(UserError);
      expect((error as UserError).message).toContain(box.socketPath);
    }, 120_000);
  },
);

describeWith(
  ['root', 'dockerd', 'ip', 'busybox', 'curl'],
  'DockerSandbox: a socket nobody listens on',
  () => {
    test('after dockerd is killed, its stale socket gives a UserError, and stop() still cleans up', async () => {
      const box = await DockerSandbox.start({ ipv6Client: false });
      try {
        const pid = Number(readFileSync(join(box.dir, 'docker.pid'), 'utf8'));
        process.kill(pid, 'SIGKILL');
        for (let i = 0; i < 100 && existsSync(`/proc/${pid}/cmdline`); i++)
          await new Promise((resolve) => setTimeout(resolve, 50));
        expect(existsSync(box.socketPath)).toBe(true);
        const error = await readInventory(
          { socketPath: box.socketPath },
          { timeoutMs: 2000 },
        ).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(UserError);
        expect((error as UserError).message).toContain('nothing listens');
        expect((error as UserError).message).toContain(box.socketPath);
      } finally {
        await box.stop();
      }
      expect(existsSync(box.dir)).toBe(false);
      expect(namespaces()).not.toContain(box.host.name);
      expect(processesOf(undefined, box.dir)).toEqual([]);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(box.dir);
    }, 180_000);

    test('a start that fails halfway says why and leaves nothing behind', async () => {
      const before = namespaces();
      const tempDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith('moat-dkr-'));
      const dirsBefore = tempDirs();
      const error = await DockerSandbox.start({ daemonArgs: ['--no-such-flag'] }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toContain('dockerd exited during start');
      expect((error as Error).message).toContain('no-such-flag');
      expect(namespaces().filter((n) => !before.includes(n))).toEqual([]);
      expect(tempDirs().filter((d) => !dirsBefore.includes(d))).toEqual([]);
    }, 60_000);
  },
);
