/**
 * A real Docker host for tests: dockerd of a chosen release and firewall backend (a DockerTarget)
 * running inside its own network namespace ("host"), with its own data root, exec root, socket
 * and containerd, all under one fresh temp dir, plus an outside client namespace ("wan") linked
 * to it by a veth pair:
 *
 *   host vd0 198.51.100.1/24 and .11   <->  wan vd1 198.51.100.2/24
 *            2001:db8:100::1/64 and ::11          2001:db8:100::2/64
 *
 * The wan's default routes (both families) go through the host, so it can also try container
 * addresses directly, as a neighbour that routes to the bridge subnets would.
 * dockerd is entered with `nsenter --net` only: `ip netns exec` remounts /sys and hides the
 * cgroup mounts dockerd needs. Its iptables rules live in the host namespace, never the machine's.
 * Every wait is bounded; stop() cleans up everything, also after a failed start().
 */
import { httpStatusIn } from './reach.js';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_TARGET, dockerBinDir, type DockerTarget } from './docker-releases.js';
import { NetNs } from './netns.js';

export const BUSYBOX_IMAGE = 'moat-test/busybox:latest';

export const HOST_V4 = '198.51.100.1';
export const WAN_V4 = '198.51.100.2';
export const HOST_V6 = '2001:db8:100::1';
export const WAN_V6 = '2001:db8:100::2';
/** A second address of the host on the wan link, for ports published on one address only. */
export const HOST_V4_ALT = '198.51.100.11';
export const HOST_V6_ALT = '2001:db8:100::11';

const DAEMON_READY_TIMEOUT_MS = 60_000;
const DAEMON_STOP_TIMEOUT_MS = 20_000;
const COMMAND_TIMEOUT_MS = 120_000;
const BUSYBOX_APPLETS = ['sh', 'httpd', 'nc', 'wget', 'sleep', 'cat', 'echo', 'ls', 'ip'];

export interface HostCommandResult {
  stdout: string;
  stderr: string;
  status: number;
}

function which(name: string): string {
  return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
}

/** Whether a pid is a live (not zombie) process whose command line mentions `marker`. */
function isOurs(pid: number, marker: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

async function waitGone(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (!pids.some(isAlive)) return true;
    await sleep(100);
  }
  return !pids.some(isAlive);
}

/** SIGTERM, a bounded wait, then SIGKILL and another bounded wait. */
async function terminate(pids: readonly number[], graceMs: number): Promise<boolean> {
  const alive = pids.filter(isAlive);
  if (alive.length === 0) return true;
  for (const pid of alive) signal(pid, 'SIGTERM');
  if (await waitGone(alive, graceMs)) return true;
  for (const pid of alive) signal(pid, 'SIGKILL');
  return waitGone(alive, 5_000);
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The inode that identifies a network namespace (from its bind-mounted file). */
function namespaceInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** Pids of processes in any of the given network namespaces, or mentioning `marker`. */
function processesOf(inodes: ReadonlySet<number>, marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    try {
      const ns = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/net`));
      const inNamespace = ns !== null && inodes.has(Number(ns[1]));
      if (inNamespace || isOurs(pid, marker)) found.push(pid);
    } catch {
      // exited meanwhile, or a kernel thread
    }
  }
  return found.filter(isAlive);
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** The container port of a `-p` spec: `[ip:]hostPort:containerPort[/proto]`. */
function containerPortOf(spec: string | undefined): number {
  if (spec === undefined) return 80;
  const port = Number(
    spec
      .replace(/\/\w+$/, '')
      .split(':')
      .pop(),
  );
  return Number.isInteger(port) && port > 0 ? port : 80;
}

export class DockerSandbox {
  readonly target: DockerTarget;
  readonly host: NetNs;
  readonly wan: NetNs;
  /** The temp dir holding everything of this sandbox (data root, exec root, socket, log). */
  readonly dir: string;
  readonly socketPath: string;
  readonly env: Record<string, string>;
  private readonly pidFile: string;
  private readonly logFile: string;
  private readonly cliConfigDir: string;
  private daemonPid: number | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(target: DockerTarget, host: NetNs, wan: NetNs, dir: string) {
    this.target = target;
    this.host = host;
    this.wan = wan;
    this.dir = dir;
    this.socketPath = join(dir, 'docker.sock');
    this.pidFile = join(dir, 'docker.pid');
    this.logFile = join(dir, 'dockerd.log');
    this.cliConfigDir = join(dir, 'cli');
    this.env = { DOCKER_HOST: `unix://${this.socketPath}` };
  }

  /**
   * @param options.target the Docker release and firewall backend (default: Debian 12's 20.10)
   * @param options.ipv6Client give the host and wan ends of the link IPv6 addresses (default true)
   * @param options.daemonArgs extra dockerd flags, e.g. `--userland-proxy=false`
   */
  static async start(options?: {
    target?: DockerTarget;
    ipv6Client?: boolean;
    daemonArgs?: readonly string[];
  }): Promise<DockerSandbox> {
    const target = options?.target ?? DEFAULT_TARGET;
    // Resolved before anything is created: a release that cannot be had leaves nothing behind.
    const binDir = dockerBinDir(target.release);
    const host = NetNs.create('dh');
    let wan: NetNs;
    try {
      wan = NetNs.create('dw');
    } catch (error) {
      host.destroy();
      throw error;
    }
    let dir: string;
    try {
      dir = mkdtempSync(join(tmpdir(), 'moat-dkr-'));
    } catch (error) {
      wan.destroy();
      host.destroy();
      throw error;
    }
    const sandbox = new DockerSandbox(target, host, wan, dir);
    try {
      sandbox.linkWan(options?.ipv6Client ?? true);
      await sandbox.startDaemon(binDir, options?.daemonArgs ?? []);
      sandbox.checkServerVersion();
      sandbox.importBusybox();
      return sandbox;
    } catch (error) {
      const log = sandbox.logTail();
      await sandbox.stop().catch(() => undefined);
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(
        `DockerSandbox.start failed: ${message}\n--- dockerd log (tail) ---\n${log}`,
        {
          cause: error,
        },
      );
    }
  }

  private linkWan(ipv6: boolean): void {
    const ip = (...args: string[]) =>
      execFileSync('ip', args, { stdio: 'pipe', timeout: COMMAND_TIMEOUT_MS });
    // Created directly inside the namespaces: no name is ever taken in the machine's namespace.
    ip(
      '-n',
      this.host.name,
      'link',
      'add',
      'vd0',
      'type',
      'veth',
      'peer',
      'name',
      'vd1',
      'netns',
      this.wan.name,
    );
    ip('-n', this.host.name, 'addr', 'add', `${HOST_V4}/24`, 'dev', 'vd0');
    ip('-n', this.host.name, 'addr', 'add', `${HOST_V4_ALT}/24`, 'dev', 'vd0');
    ip('-n', this.wan.name, 'addr', 'add', `${WAN_V4}/24`, 'dev', 'vd1');
    if (ipv6) {
      ip('-n', this.host.name, 'addr', 'add', `${HOST_V6}/64`, 'dev', 'vd0', 'nodad');
      ip('-n', this.host.name, 'addr', 'add', `${HOST_V6_ALT}/64`, 'dev', 'vd0', 'nodad');
      ip('-n', this.wan.name, 'addr', 'add', `${WAN_V6}/64`, 'dev', 'vd1', 'nodad');
    }
    ip('-n', this.host.name, 'link', 'set', 'vd0', 'up');
    ip('-n', this.wan.name, 'link', 'set', 'vd1', 'up');
    ip('-n', this.wan.name, 'route', 'add', 'default', 'via', HOST_V4);
    if (ipv6) ip('-n', this.wan.name, '-6', 'route', 'add', 'default', 'via', HOST_V6);
  }

  private async startDaemon(
    binDir: string | undefined,
    extraArgs: readonly string[],
  ): Promise<void> {
    const backendArgs: string[] = [];
    if (this.target.firewallBackend === 'nftables') {
      // That backend does not enable forwarding itself (../shared/docker/README.md).
      this.host.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
      backendArgs.push('--firewall-backend=nftables');
    }
    // dockerd finds docker-proxy (and runc, for releases that bring their own) on its PATH.
    const path = binDir === undefined ? process.env.PATH : `${binDir}:${process.env.PATH ?? ''}`;
    const tag = `moat-test-${randomBytes(4).toString('hex')}`;
    mkdirSync(join(this.dir, 'data'));
    mkdirSync(join(this.dir, 'exec'));
    mkdirSync(this.cliConfigDir);
    // Its own (empty) config file: the machine's /etc/docker/daemon.json must not leak in.
    const config = join(this.dir, 'daemon.json');
    writeFileSync(config, '{}\n');
    const log = openSync(this.logFile, 'a');
    try {
      const child = spawn(
        'nsenter',
        [
          `--net=${this.host.path}`,
          binDir === undefined ? which('dockerd') : join(binDir, 'dockerd'),
          '--config-file',
          config,
          '--data-root',
          join(this.dir, 'data'),
          '--exec-root',
          join(this.dir, 'exec'),
          '-H',
          `unix://${this.socketPath}`,
          '--pidfile',
          this.pidFile,
          '--containerd-namespace',
          tag,
          '--containerd-plugins-namespace',
          `${tag}-p`,
          '--shutdown-timeout',
          '5',
          ...backendArgs,
          ...extraArgs,
        ],
        { detached: true, stdio: ['ignore', log, log], env: { ...process.env, PATH: path } },
      );
      child.on('error', () => undefined);
      child.unref();
      // nsenter execs dockerd, so this pid is the daemon's.
      this.daemonPid = child.pid;
    } finally {
      closeSync(log);
    }
    const deadline = Date.now() + DAEMON_READY_TIMEOUT_MS;
    for (let i = 0; i < 600 && Date.now() < deadline; i++) {
      if (this.daemonPid === undefined || !isAlive(this.daemonPid))
        throw new Error('dockerd exited during start');
      if (existsSync(this.socketPath)) {
        const ping = spawnSync('docker', ['version', '--format', '{{.Server.APIVersion}}'], {
          env: this.cliEnv(),
          encoding: 'utf8',
          timeout: 5_000,
        });
        if (ping.status === 0) return;
      }
      await sleep(100);
    }
    throw new Error(
      `dockerd did not answer on ${this.socketPath} within ${DAEMON_READY_TIMEOUT_MS} ms`,
    );
  }

  private importBusybox(): void {
    const root = join(this.dir, 'image-root');
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync(which('busybox'), join(root, 'bin', 'busybox'));
    for (const applet of BUSYBOX_APPLETS) symlinkSync('busybox', join(root, 'bin', applet));
    const tarball = execFileSync('tar', ['-C', root, '-c', '.'], {
      maxBuffer: 64 * 1024 * 1024,
      timeout: COMMAND_TIMEOUT_MS,
    });
    this.docker(['import', '-', BUSYBOX_IMAGE], tarball);
  }

  private cliEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.env,
      DOCKER_CONFIG: this.cliConfigDir,
    };
    delete env.DOCKER_CONTEXT;
    return env;
  }

  /** The docker CLI against this daemon; throws with stderr on failure. */
  docker(args: readonly string[], input?: string | Buffer): string {
    return this.dockerWithin(COMMAND_TIMEOUT_MS, args, input);
  }

  private dockerWithin(
    timeoutMs: number,
    args: readonly string[],
    input?: string | Buffer,
  ): string {
    const result = spawnSync('docker', [...args], {
      env: this.cliEnv(),
      encoding: 'utf8',
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
      ...(input === undefined ? {} : { input }),
    });
    if (result.status !== 0) {
      const why = result.error?.message ?? result.stderr.trim();
      throw new Error(
        `docker ${args.join(' ')} failed (exit ${result.status ?? 'signal'}): ${why}`,
      );
    }
    return result.stdout;
  }

  /**
   * `docker run -d` busybox httpd with the given `-p` specs; returns the container id. Serves on
   * `containerPort`, by default the container port of the first spec. Waits (bounded) until the
   * server answers on the container's address, so a test never races its start.
   */
  runHttpd(
    name: string,
    publish: readonly string[],
    extraArgs: readonly string[] = [],
    containerPort: number = containerPortOf(publish[0]),
  ): string {
    const id = this.docker([
      'run',
      '-d',
      '--name',
      name,
      ...publish.flatMap((spec) => ['-p', spec]),
      ...extraArgs,
      BUSYBOX_IMAGE,
      'httpd',
      '-f',
      '-p',
      String(containerPort),
      '-h',
      '/',
    ]).trim();
    const addresses = this.docker([
      'inspect',
      '--format',
      '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}',
      id,
    ])
      .trim()
      .split(/\s+/)
      .filter((a) => a !== '');
    const address = addresses[0];
    if (address !== undefined) {
      const deadline = Date.now() + 10_000;
      for (let i = 0; i < 100 && Date.now() < deadline; i++) {
        if (this.httpStatusFromHost(`http://${address}:${containerPort}/`, 1) !== '000') break;
        spawnSync('sleep', ['0.1']);
      }
    }
    return id;
  }

  /** The HTTP status the outside client gets ('000' = not reached). */
  httpStatusFromWan(url: string): string {
    return httpStatusIn(this.wan, url);
  }

  /** The HTTP status the Docker host itself gets ('000' = not reached). */
  httpStatusFromHost(url: string, maxSeconds = 3): string {
    return httpStatusIn(this.host, url, undefined, maxSeconds);
  }

  /** Any command in the host namespace (via nsenter --net, which keeps /sys and cgroups). */
  execInHost(
    cmd: string,
    args: readonly string[],
    options?: { input?: string; env?: Record<string, string> },
  ): HostCommandResult {
    const result = spawnSync('nsenter', [`--net=${this.host.path}`, cmd, ...args], {
      encoding: 'utf8',
      timeout: COMMAND_TIMEOUT_MS,
      maxBuffer: 256 * 1024 * 1024,
      env: { ...process.env, ...options?.env },
      ...(options?.input === undefined ? {} : { input: options.input }),
    });
    return {
      stdout: result.stdout,
      stderr:
        result.error === undefined ? result.stderr : `${result.stderr}${result.error.message}`,
      status: result.status ?? -1,
    };
  }

  /** The daemon that answers must be the release asked for (Debian's says `20.10.24+dfsg1`). */
  private checkServerVersion(): void {
    const version = this.docker(['version', '--format', '{{.Server.Version}}']).trim();
    if (!version.startsWith(this.target.release))
      throw new Error(`asked for Docker ${this.target.release}, the daemon says ${version}`);
  }

  /** One family's `iptables-save` (of one table, or all), as printed; throws on failure. */
  save(family: 'ipv4' | 'ipv6', table?: string): string {
    const tool = family === 'ipv4' ? 'iptables-save' : 'ip6tables-save';
    const result = this.execInHost(tool, table === undefined ? [] : ['-t', table]);
    if (result.status !== 0) throw new Error(`${tool} failed: ${result.stderr}`);
    return result.stdout;
  }

  /** `ipset save` in the host namespace. */
  ipsetSave(): string {
    return this.checked('ipset', ['save']);
  }

  /**
   * The host's firewall as text: the one dump tests compare before and after, and print on
   * failure. Every table of both families, the ipsets and, under Docker's nftables backend,
   * `nft -s list ruleset`; without the `# Generated` lines and the counters that change alone.
   */
  firewall(): string {
    const parts = [
      ['iptables-save', this.save('ipv4')],
      ['ip6tables-save', this.save('ipv6')],
      ['ipset save', this.ipsetSave()],
    ];
    if (this.target.firewallBackend === 'nftables')
      parts.push(['nft -s list ruleset', this.checked('nft', ['-s', 'list', 'ruleset'])]);
    return parts
      .map(([title, text]) => {
        const lines = (text ?? '')
          .split('\n')
          .filter((line) => !line.startsWith('#'))
          .map((line) => line.replace(/ \[\d+:\d+\]$/, ''));
        return `## ${title ?? ''}\n${lines.join('\n')}`;
      })
      .join('\n');
  }

  private checked(cmd: string, args: readonly string[]): string {
    const result = this.execInHost(cmd, args);
    if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout;
  }

  /** The last lines of dockerd's log, for failure messages. */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Tears everything down; idempotent, safe after a failed start. */
  stop(): Promise<void> {
    this.stopping ??= this.teardown();
    return this.stopping;
  }

  private async teardown(): Promise<void> {
    const problems: string[] = [];
    const daemonPids = [this.daemonPid, readPid(this.pidFile)].filter(
      (pid): pid is number => pid !== undefined && isOurs(pid, this.dir),
    );
    if (daemonPids.length > 0 && existsSync(this.socketPath)) {
      try {
        const ids = this.dockerWithin(15_000, ['ps', '-aq'])
          .split('\n')
          .filter((id) => id !== '');
        if (ids.length > 0) this.dockerWithin(60_000, ['rm', '-f', '-v', ...ids]);
      } catch (error) {
        problems.push(
          `removing containers: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
    if (!(await terminate([...new Set(daemonPids)], DAEMON_STOP_TIMEOUT_MS)))
      problems.push('dockerd did not exit');
    // dockerd stops the containerd it started; if it was killed, containerd is still ours to stop.
    const containerd = readPid(join(this.dir, 'exec', 'containerd', 'containerd.pid'));
    if (containerd !== undefined && isOurs(containerd, this.dir))
      await terminate([containerd], 10_000);

    // Whatever is left in our namespaces (docker-proxy, shims, container processes) was started
    // by this sandbox's daemon: stop it by pid.
    const inodes = new Set<number>();
    for (const path of [this.host.path, this.wan.path]) {
      const inode = namespaceInode(path);
      if (inode !== undefined) inodes.add(inode);
    }
    try {
      for (const entry of readdirSync(join(this.dir, 'exec', 'netns'))) {
        const inode = namespaceInode(join(this.dir, 'exec', 'netns', entry));
        if (inode !== undefined) inodes.add(inode);
      }
    } catch {
      // no container namespaces
    }
    const leftovers = processesOf(inodes, this.dir);
    if (leftovers.length > 0) {
      for (const pid of leftovers) signal(pid, 'SIGKILL');
      if (!(await waitGone(leftovers, 5_000)))
        problems.push(`processes still running: ${leftovers.join(' ')}`);
    }

    for (const point of mountsUnder(this.dir)) {
      const result = spawnSync('umount', [point], { timeout: 10_000 });
      if (result.status !== 0) spawnSync('umount', ['-l', point], { timeout: 10_000 });
    }
    const stillMounted = mountsUnder(this.dir);
    if (stillMounted.length > 0) problems.push(`still mounted: ${stillMounted.join(' ')}`);
    else {
      try {
        rmSync(this.dir, { recursive: true, force: true, maxRetries: 3 });
      } catch (error) {
        problems.push(
          `removing ${this.dir}: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
    this.wan.destroy();
    this.host.destroy();
    if (problems.length > 0) throw new Error(`DockerSandbox.stop: ${problems.join('; ')}`);
  }
}
