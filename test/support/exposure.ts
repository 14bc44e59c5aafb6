/**
 * The exposure window, measured with real packets on a real dockerd: from
 * `docker run` returning to the first packet the policy forbids being dropped, for
 *
 *   - a port the policy names (`from: [host]`),
 *   - a port only `defaults.ingress: host` covers (on 27+ also for an IPv4-only container, whose
 *     IPv6 port only docker-proxy serves),
 *   - a container recreated (with a new address) whose own egress section allows one port, under
 *     `defaults.egress: deny` and under a global allow with the group's `default: deny`,
 *
 * once after `moat apply` with no moat running, and once under `moat watch`. A prober outside
 * (the "wan" namespace) opens a connection to the host port every 20 ms, and one on the Docker
 * host itself tells when the server answers; for egress, the recreated container connects out
 * every 50 ms to a forbidden and to an allowed port of a listener outside. Every connection the
 * policy forbids that got through is a leak; the window is from `docker run` returning to the
 * last leak (0: none got through). IPv6 goes through Docker's IPv6 DNAT on releases that have
 * it (27+, an `--ipv6` network) and through docker-proxy (INPUT) for an IPv4-only container.
 *
 * No test framework here: `npm run bench` prints these rows (scripts/bench/exposure.ts), and
 * test/e2e/exposure.test.ts asserts on them.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BUSYBOX_IMAGE, type DockerSandbox, HOST_V4, HOST_V6, WAN_V4 } from './docker-sandbox.js';
import type { TargetName } from './docker-releases.js';
import type { NetNs } from './netns.js';

/** Where the programs the measurement runs are: the built CLI, and prober.mjs beside this file. */
export interface ExposurePaths {
  cli: string;
  prober: string;
}
/** How long after `docker run` returned the probes go on. */
const OBSERVE_MS = 3000;
const NAMED_PORT = 9191;
const STRAY_PORT = 9292;
const DENIED_PORT = 8080;
const ALLOWED_PORT = 8081;
const EGRESS_SUBNET = '172.30.9.0/24';

export interface ExposureRow {
  target: TargetName;
  moat: 'not running' | 'watch';
  case: string;
  family: 'IPv4' | 'IPv6';
  /** ms after `docker run` returned: the server first answers the host / allowed egress gets out. */
  readyMs: number | undefined;
  /** Connections the policy forbids that got through, whenever they started. */
  leaked: number;
  /** ms from `docker run` returning to the last leak (0: none). */
  windowMs: number;
  /** ms after `docker run` returned: the first forbidden connection that timed out (dropped). */
  firstDropMs: number | undefined;
}

const GLOBAL_DENY = `version: 1
defaults:
  ingress: host
  egress: deny
containers:
  named:
    ingress:
      - ports: [${NAMED_PORT}/tcp]
        from: [host]
  web:
    egress:
      allow:
        - to: [${WAN_V4}]
          ports: [${ALLOWED_PORT}/tcp]
`;

const GROUP_DENY = `version: 1
defaults:
  ingress: host
  egress: allow
containers:
  web:
    egress:
      default: deny
      allow:
        - to: [${WAN_V4}]
          ports: [${ALLOWED_PORT}/tcp]
`;

/** Connects every 50 ms to a forbidden and an allowed port outside, each attempt on its own. */
const EGRESS_LOOP =
  `while :; do ` +
  `nc -w 1 ${WAN_V4} ${DENIED_PORT} </dev/null >/dev/null 2>&1 & ` +
  `nc -w 1 ${WAN_V4} ${ALLOWED_PORT} </dev/null >/dev/null 2>&1 & ` +
  `sleep 0.05; done`;

interface Line {
  at: number;
  result?: string;
  port?: number;
  ready?: boolean;
}

/** A prober process in a namespace, its JSON lines collected. */
class Prober {
  readonly lines: Line[] = [];
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<void>;
  private buffer = '';

  constructor(
    private readonly path: string,
    ns: NetNs,
    args: readonly string[],
  ) {
    this.child = spawn('nsenter', [`--net=${ns.path}`, process.execPath, path, ...args]);
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      this.buffer += chunk;
      const parts = this.buffer.split('\n');
      this.buffer = parts.pop() ?? '';
      for (const part of parts) if (part !== '') this.lines.push(JSON.parse(part) as Line);
    });
    this.child.stderr.resume();
    this.exited = new Promise((resolve) =>
      this.child.on('exit', () => {
        resolve();
      }),
    );
  }

  async ready(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!this.lines.some((l) => l.ready === true)) {
      if (Date.now() > deadline) throw new Error(`prober ${this.path} did not start`);
      await sleep(10);
    }
  }

  /** listen mode: stop. */
  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(5000, undefined, { ref: false })]);
  }

  /** connect mode: end the run (stdin closes), wait for the attempts still out. */
  async finish(): Promise<void> {
    this.child.stdin.end();
    await Promise.race([this.exited, sleep(5000, undefined, { ref: false })]);
  }
}

/** A running `moat watch`. */
class Watch {
  output = '';
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<void>;

  constructor(sandbox: DockerSandbox, cli: string, env: Record<string, string>, policy: string) {
    this.child = spawn(
      'nsenter',
      [`--net=${sandbox.host.path}`, process.execPath, cli, 'watch', '-f', policy],
      { env: { ...process.env, ...env } },
    );
    const add = (d: Buffer) => (this.output += d.toString());
    this.child.stdout.on('data', add);
    this.child.stderr.on('data', add);
    this.exited = new Promise((resolve) =>
      this.child.on('exit', () => {
        resolve();
      }),
    );
  }

  async ready(): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (!/noticing changes with/.test(this.output)) {
      if (Date.now() > deadline) throw new Error(`moat watch did not start:\n${this.output}`);
      await sleep(50);
    }
    await sleep(1000); // its start pass is over and Docker's event stream is open
  }

  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(15_000, undefined, { ref: false })]);
    this.child.kill('SIGKILL');
  }
}

function relative(at: number | undefined, t0: number): number | undefined {
  return at === undefined ? undefined : at - t0;
}

/** One target's measurements. */
class ExposureHost {
  private readonly work = mkdtempSync(join(tmpdir(), 'moat-exposure-'));
  private readonly policy = join(this.work, 'firewall.yaml');
  private readonly env: Record<string, string>;
  private listener: Prober | undefined;

  constructor(
    private readonly sandbox: DockerSandbox,
    private readonly paths: ExposurePaths,
  ) {
    this.env = {
      ...sandbox.env,
      NO_COLOR: '1',
      MOAT_HISTORY_DIR: join(this.work, 'state'),
      MOAT_LOCK_FILE: join(this.work, 'moat.lock'),
    };
  }

  /** Docker 27+ DNATs IPv6 to a container on an `--ipv6` network; 20.10 proxies it. */
  private get ipv6Network(): boolean {
    return this.sandbox.target.ip6tablesByDefault;
  }

  async setUp(): Promise<void> {
    if (this.ipv6Network)
      this.sandbox.docker(['network', 'create', '--ipv6', '--subnet', 'fd00:6d6f:6174::/64', 'v6']);
    // `web`'s own network, so a recreate can be given a new address for sure (see egress()).
    this.sandbox.docker(['network', 'create', '--subnet', EGRESS_SUBNET, 'egress']);
    this.listener = new Prober(this.paths.prober, this.sandbox.wan, [
      'listen',
      String(DENIED_PORT),
      String(ALLOWED_PORT),
    ]);
    await this.listener.ready();
    this.runWeb();
    this.apply(GLOBAL_DENY);
  }

  async tearDown(): Promise<void> {
    await this.listener?.stop();
    rmSync(this.work, { recursive: true, force: true });
  }

  apply(policy: string): void {
    writeFileSync(this.policy, policy);
    const result = this.sandbox.execInHost(
      process.execPath,
      [this.paths.cli, 'apply', '-f', this.policy, '--auto-approve'],
      { env: this.env },
    );
    if (result.status !== 0)
      throw new Error(`moat apply failed (${result.status}): ${result.stderr}${result.stdout}`);
  }

  startWatch(): Promise<Watch> {
    const watch = new Watch(this.sandbox, this.paths.cli, this.env, this.policy);
    return watch.ready().then(() => watch);
  }

  private runWeb(): void {
    this.sandbox.docker([
      'run',
      '-d',
      '--name',
      'web',
      '--network',
      'egress',
      BUSYBOX_IMAGE,
      'sh',
      '-c',
      EGRESS_LOOP,
    ]);
  }

  /** A port published by a container started now, probed from outside and from the host. */
  async ingress(
    moat: ExposureRow['moat'],
    name: string,
    hostPort: number,
    label: string,
    network: 'v6' | 'default' = this.ipv6Network ? 'v6' : 'default',
  ): Promise<ExposureRow[]> {
    const families = [
      { family: 'IPv4' as const, address: HOST_V4 },
      { family: 'IPv6' as const, address: HOST_V6 },
    ];
    const probes = families.map(({ family, address }) => ({
      family,
      wan: new Prober(this.paths.prober, this.sandbox.wan, [
        'connect',
        address,
        String(hostPort),
        '20',
        '300',
      ]),
      host: new Prober(this.paths.prober, this.sandbox.host, [
        'connect',
        address,
        String(hostPort),
        '50',
        '300',
      ]),
    }));
    const t0 = await this.startedWith(
      probes.flatMap((p) => [p.wan, p.host]),
      () => {
        this.sandbox.docker([
          'run',
          '-d',
          '--name',
          name,
          ...(network === 'v6' ? ['--network', 'v6'] : []),
          '-p',
          `${hostPort}:80`,
          BUSYBOX_IMAGE,
          'httpd',
          '-f',
          '-p',
          '80',
          '-h',
          '/',
        ]);
      },
    );
    this.sandbox.docker(['rm', '-f', name]);
    return probes.map(({ family, wan, host }) => {
      const leaks = wan.lines.filter((l) => l.result === 'ok');
      const drops = wan.lines.filter((l) => l.result === 'timeout' && l.at >= t0);
      return {
        target: this.sandbox.target.name,
        moat,
        case: label,
        family,
        readyMs: relative(host.lines.find((l) => l.result === 'ok')?.at, t0),
        leaked: leaks.length,
        windowMs: Math.max(0, (leaks.at(-1)?.at ?? t0) - t0),
        firstDropMs: relative(drops[0]?.at, t0),
      };
    });
  }

  /**
   * `web` recreated with a new address (another container takes its old one first), connecting
   * out to a forbidden and to an allowed port of the listener outside.
   */
  async egress(moat: ExposureRow['moat'], label: string): Promise<ExposureRow> {
    const listener = this.listener;
    if (listener === undefined) throw new Error('setUp() first');
    const old = this.sandbox
      .docker(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'web'])
      .trim();
    this.sandbox.docker(['rm', '-f', 'web']);
    // Docker would hand the freed address straight back; another container takes it first.
    this.sandbox.docker([
      'run',
      '-d',
      '--name',
      'filler',
      '--network',
      'egress',
      '--ip',
      old,
      BUSYBOX_IMAGE,
      'sleep',
      '600',
    ]);
    const from = Date.now();
    const t0 = await this.startedWith([], () => {
      this.runWeb();
    });
    this.sandbox.docker(['rm', '-f', 'filler']);
    const seen = listener.lines.filter((l) => l.at >= from && l.at <= t0 + OBSERVE_MS);
    const leaks = seen.filter((l) => l.port === DENIED_PORT);
    const allowed = seen.filter((l) => l.port === ALLOWED_PORT);
    return {
      target: this.sandbox.target.name,
      moat,
      case: label,
      family: 'IPv4',
      readyMs: relative(allowed[0]?.at, t0),
      leaked: leaks.length,
      windowMs: Math.max(0, (leaks.at(-1)?.at ?? t0) - t0),
      firstDropMs: undefined,
    };
  }

  /** Starts the probers, runs `start` (a `docker run`), observes; returns when it returned. */
  private async startedWith(probers: readonly Prober[], start: () => void): Promise<number> {
    await Promise.all(probers.map((p) => p.ready()));
    await sleep(200);
    start();
    const t0 = Date.now();
    await sleep(OBSERVE_MS);
    await Promise.all(probers.map((p) => p.finish()));
    return t0;
  }
}

/**
 * Every measurement on one Docker host: no moat running after an apply, then under watch, for
 * the two policies; the host is left with the containers and networks it made.
 */
export async function measureExposure(
  sandbox: DockerSandbox,
  paths: ExposurePaths,
  log: (row: ExposureRow) => void = () => undefined,
): Promise<ExposureRow[]> {
  const host = new ExposureHost(sandbox, paths);
  const rows: ExposureRow[] = [];
  const add = (row: ExposureRow) => {
    rows.push(row);
    log(row);
  };
  let watch: Watch | undefined;
  try {
    await host.setUp();
    for (const moat of ['not running', 'watch'] as const) {
      if (moat === 'watch') watch = await host.startWatch();
      (await host.ingress(moat, 'named', NAMED_PORT, NAMED_CASE)).forEach(add);
      (await host.ingress(moat, 'stray', STRAY_PORT, DEFAULTS_CASE)).forEach(add);
      // 27+: the same on an IPv4-only network, whose IPv6 port only docker-proxy serves (on 20.10
      // every container is IPv4-only: the row above is that case).
      if (sandbox.target.ip6tablesByDefault)
        (await host.ingress(moat, 'stray4', STRAY_PORT + 1, PROXY_CASE, 'default')).forEach(add);
      add(await host.egress(moat, GLOBAL_DENY_CASE));
    }
    await watch?.stop();
    watch = undefined;
    host.apply(GROUP_DENY);
    add(await host.egress('not running', GROUP_DENY_CASE));
    watch = await host.startWatch();
    add(await host.egress('watch', GROUP_DENY_CASE));
  } finally {
    await watch?.stop();
    await host.tearDown();
  }
  return rows;
}

export const NAMED_CASE = 'a port the policy names';
export const DEFAULTS_CASE = 'a port only the defaults cover';
export const PROXY_CASE = 'a port only the defaults cover, IPv4-only container';
export const GLOBAL_DENY_CASE = 'recreated, egress allowlist, defaults.egress: deny';
export const GROUP_DENY_CASE = 'recreated, its own default: deny, global allow';
