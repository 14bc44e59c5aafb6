/**
 * The end-to-end harness every test with a real dockerd uses: one Docker host (a DockerSandbox
 * of a chosen release and firewall backend), destinations for egress tests if asked for, a
 * policy file, and the steps the tests share: run moat as a user would (`moat watch` too), apply
 * and check that the host converged, dump the firewall, create networks (IPv6, gateway modes)
 * and probe with real packets who reaches what.
 *
 *   wan       198.51.100.0/24  host .1 and .11, 2001:db8:100::1 and ::11; client .2, ::2
 *   internal  192.0.2.0/24     host side 192.0.2.1,   server 192.0.2.10           (destinations)
 *   outside   203.0.113.0/24   host side 203.0.113.1, servers 203.0.113.10, .20   (destinations)
 *
 * `useLab(options, setup)` inside a describe starts it before the tests and stops it after:
 *
 *   describeOnDocker(['28.5.2', '29.7.2-nftables'], NEEDS, 'routed IPv6', (target) => {
 *     const lab = useLab({ target }, (lab) => {
 *       lab.createNetwork('r6', { subnet4: '172.28.0.0/24', subnet6: '2001:db8:6::/64',
 *                                 gatewayMode6: 'routed' });
 *       lab.runHttpd('ghost', ['2368:2368', '198.51.100.11:2369:2368'], ['--network', 'r6']);
 *     });
 *     test('host only, on every path Docker opens', async () => {
 *       lab.applyConverged(HOST_ONLY);
 *       await lab.expectPortReach('ghost', 2368, {
 *         published: { ipv4: false, ipv6: false },
 *         direct: { ipv4: false, ipv6: false },
 *       });
 *     });
 *   });
 */
import { afterAll, beforeAll, expect } from '@jest/globals';
import { DEFAULT_TARGET, type DockerTarget } from './docker-targets.js';
import { DockerSandbox, HOST_V4, HOST_V6 } from './docker-sandbox.js';
import { Destination } from './lan.js';
import { moat, PolicyDir, type CliResult } from './moat-cli.js';
import { RunningWatch } from './moat-watch.js';
import { httpFromContainer, httpStatusIn, httpStatusInAsync } from './reach.js';

export interface LabOptions {
  readonly target?: DockerTarget;
  /** Extra dockerd flags, e.g. `--userland-proxy=false`. */
  readonly daemonArgs?: readonly string[];
  /** Give the wan link IPv6 addresses (default true). */
  readonly ipv6Client?: boolean;
  /** Start the internal and outside destination networks, for egress tests (default false). */
  readonly destinations?: boolean;
}

export type GatewayMode = 'nat' | 'nat-unprotected' | 'routed' | 'isolated';

/** `docker network create` options the scenarios need. */
export interface NetworkSpec {
  readonly subnet4?: string;
  /** An IPv6 subnet makes the network `--ipv6`. */
  readonly subnet6?: string;
  readonly gatewayMode4?: GatewayMode;
  readonly gatewayMode6?: GatewayMode;
  readonly internal?: boolean;
}

export type IpFamily = 'ipv4' | 'ipv6';

/** One attempt of the wan client to reach a container port. */
export interface ReachProbe {
  readonly path: 'published' | 'direct';
  readonly family: IpFamily;
  readonly url: string;
  readonly reached: boolean;
}

/**
 * Whether the wan client reaches a container port through the host port that publishes it and
 * directly at the container's address, per family. Undefined: no such path (not published in
 * that family, or the container has no address of it). Reached through any of several bindings
 * or networks counts as reached.
 */
export interface PortReach {
  readonly published: Partial<Record<IpFamily, boolean>>;
  readonly direct: Partial<Record<IpFamily, boolean>>;
  readonly probes: readonly ReachProbe[];
}

export type ExpectedReach = {
  readonly [P in 'published' | 'direct']?: Partial<Record<IpFamily, boolean>>;
};

type Probe = readonly [what: string, expected: boolean, probe: () => boolean];

interface InspectedSettings {
  Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> | null;
  Networks?: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }> | null;
}

const isV6 = (address: string): boolean => address.includes(':');
const urlOf = (address: string, port: number | string): string =>
  `http://${isV6(address) ? `[${address}]` : address}:${port}/`;

/** The address a wan client tries for a port bound to `hostIp` on the host. */
function publishedAddress(hostIp: string): string {
  if (hostIp === '' || hostIp === '0.0.0.0') return HOST_V4;
  if (hostIp === '::') return HOST_V6;
  // A loopback binding: the wan can only try the host's own address on the link.
  if (hostIp.startsWith('127.')) return HOST_V4;
  if (hostIp === '::1') return HOST_V6;
  return hostIp;
}

export class Lab {
  readonly target: DockerTarget;
  readonly policy = new PolicyDir();
  private box: DockerSandbox | undefined;
  private readonly destinations: Destination[] = [];
  private readonly watches: RunningWatch[] = [];

  constructor(private readonly options: LabOptions = {}) {
    this.target = options.target ?? DEFAULT_TARGET;
  }

  async start(): Promise<this> {
    this.box = await DockerSandbox.start({
      target: this.target,
      daemonArgs: this.options.daemonArgs ?? [],
      ipv6Client: this.options.ipv6Client ?? true,
    });
    if (this.options.destinations === true) {
      this.destinations.push(new Destination(this.box.host, '192.0.2.1/24', ['192.0.2.10/24']));
      this.destinations.push(
        new Destination(this.box.host, '203.0.113.1/24', ['203.0.113.10/24', '203.0.113.20/24']),
      );
    }
    return this;
  }

  get sandbox(): DockerSandbox {
    if (this.box === undefined) throw new Error('the lab is not started (did beforeAll fail?)');
    return this.box;
  }

  /** The docker CLI against this lab's daemon. */
  docker(args: readonly string[], input?: string | Buffer): string {
    return this.sandbox.docker(args, input);
  }

  /** A busybox httpd container with `-p` specs (see DockerSandbox.runHttpd). */
  runHttpd(
    name: string,
    publish: readonly string[],
    extraArgs: readonly string[] = [],
    containerPort?: number,
  ): string {
    return containerPort === undefined
      ? this.sandbox.runHttpd(name, publish, extraArgs)
      : this.sandbox.runHttpd(name, publish, extraArgs, containerPort);
  }

  /** A container that only sleeps: a client for egress probes. */
  runSleeper(name: string, extraArgs: readonly string[] = []): string {
    return this.docker([
      'run',
      '-d',
      '--name',
      name,
      ...extraArgs,
      'moat-test/busybox',
      'sleep',
      '3600',
    ]).trim();
  }

  /** Any command in the host namespace: lets `moat(lab, …)` and other helpers take a lab. */
  execInHost(
    cmd: string,
    args: readonly string[],
    options?: { input?: string; env?: Record<string, string> },
  ): CliResult {
    return this.sandbox.execInHost(cmd, args, options);
  }

  /** The built CLI in the host namespace, talking to this lab's daemon. */
  moat(args: readonly string[], env: Record<string, string> = {}): CliResult {
    return moat(this.sandbox, args, { ...this.sandbox.env, ...env });
  }

  /**
   * `moat watch ARGS` in the host namespace, as a user runs it (see RunningWatch); stop() stops
   * it (SIGTERM) before the daemon if the test did not.
   */
  startWatch(args: readonly string[], env: Record<string, string> = {}): RunningWatch {
    const watch = new RunningWatch(this.sandbox, args, env);
    this.watches.push(watch);
    return watch;
  }

  /**
   * Writes `text` as the policy, runs `moat apply --auto-approve` and checks the host converged
   * (`moat plan --detailed-exitcode` exits 0); returns apply's output. Fails with the firewall.
   */
  applyConverged(text: string, extraArgs: readonly string[] = []): string {
    const file = this.policy.write(text);
    const applied = this.moat(['apply', '-f', file, '--auto-approve', ...extraArgs]);
    if (applied.status !== 0)
      throw new Error(
        `moat apply exited ${applied.status}\n${applied.stdout}\n${applied.stderr}\n${this.firewall()}`,
      );
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toMatch(/Apply complete|No changes/);
    const plan = this.moat(['plan', '-f', file, '--detailed-exitcode']);
    if (plan.status !== 0)
      throw new Error(
        `moat plan after apply exited ${plan.status} (expected 0: converged)\n${plan.stdout}\n${plan.stderr}\n${this.firewall()}`,
      );
    return applied.stdout;
  }

  /** The host's firewall: the one dump to compare and to print (DockerSandbox.firewall). */
  firewall(): string {
    return this.sandbox.firewall();
  }

  /** One family's iptables-save of one table (all tables when none is named). */
  save(family: IpFamily, table?: string): string {
    return this.sandbox.save(family, table);
  }

  /** `ipset save` on the host. */
  ipsetSave(): string {
    return this.sandbox.ipsetSave();
  }

  /** Whether the wan client gets an HTTP answer from `url`, optionally from one of its addresses. */
  wanReaches(url: string, fromAddress?: string): boolean {
    return httpStatusIn(this.sandbox.wan, url, fromAddress) !== '000';
  }

  /** Whether the Docker host itself gets an HTTP answer from `url`. */
  hostReaches(url: string): boolean {
    return this.sandbox.httpStatusFromHost(url) !== '000';
  }

  /** Whether `container` gets an HTTP answer from ADDRESS:PORT. */
  containerReaches(container: string, address: string, port = 80): boolean {
    return httpFromContainer(this.sandbox, container, address, port);
  }

  /**
   * Asserts each probe's outcome; on a mismatch fails with every mismatch and the host's
   * firewall, so a failure is a bug report.
   */
  expectReachability(probes: readonly Probe[]): void {
    const wrong: string[] = [];
    for (const [what, expected, probe] of probes) {
      const actual = probe();
      if (actual !== expected)
        wrong.push(
          `${what}: ${actual ? 'reached' : 'not reached'}, expected ${expected ? 'reached' : 'not reached'}`,
        );
    }
    if (wrong.length > 0) throw new Error(`${wrong.join('\n')}\n${this.firewall()}`);
  }

  /** `docker network create` with the subnets, IPv6 and gateway modes of `spec`. */
  createNetwork(name: string, spec: NetworkSpec = {}): void {
    const option = (family: 4 | 6, mode: GatewayMode | undefined): string[] =>
      mode === undefined
        ? []
        : ['-o', `com.docker.network.bridge.gateway_mode_ipv${family}=${mode}`];
    this.docker([
      'network',
      'create',
      ...(spec.subnet4 === undefined ? [] : ['--subnet', spec.subnet4]),
      ...(spec.subnet6 === undefined ? [] : ['--ipv6', '--subnet', spec.subnet6]),
      ...(spec.internal === true ? ['--internal'] : []),
      ...option(4, spec.gatewayMode4),
      ...option(6, spec.gatewayMode6),
      name,
    ]);
  }

  /**
   * Whether the wan reaches `container`'s `port`/`protocol` (tcp, HTTP) through each host port
   * publishing it and directly at each of its addresses, over IPv4 and IPv6. The probes run at
   * once; an unanswered one costs about two seconds.
   */
  async reach(container: string, port: number, protocol = 'tcp'): Promise<PortReach> {
    const settings = JSON.parse(
      this.docker(['inspect', '--format', '{{json .NetworkSettings}}', container]),
    ) as InspectedSettings;
    const targets: Omit<ReachProbe, 'reached'>[] = [];
    for (const binding of settings.Ports?.[`${port}/${protocol}`] ?? []) {
      if (binding.HostPort === '') continue;
      const address = publishedAddress(binding.HostIp);
      targets.push({
        path: 'published',
        family: isV6(address) ? 'ipv6' : 'ipv4',
        url: urlOf(address, binding.HostPort),
      });
    }
    for (const network of Object.values(settings.Networks ?? {})) {
      for (const address of [network.IPAddress, network.GlobalIPv6Address]) {
        if (address === undefined || address === '') continue;
        targets.push({
          path: 'direct',
          family: isV6(address) ? 'ipv6' : 'ipv4',
          url: urlOf(address, port),
        });
      }
    }
    const probes = await Promise.all(
      targets.map(async (t) => ({
        ...t,
        reached: (await httpStatusInAsync(this.sandbox.wan, t.url)) !== '000',
      })),
    );
    const summary = (path: ReachProbe['path']): Partial<Record<IpFamily, boolean>> => {
      const out: Partial<Record<IpFamily, boolean>> = {};
      for (const p of probes.filter((q) => q.path === path))
        out[p.family] = (out[p.family] ?? false) || p.reached;
      return out;
    };
    return { published: summary('published'), direct: summary('direct'), probes };
  }

  /**
   * Asserts the outcome of `reach` for the paths and families `expected` names; a named path
   * that does not exist is a mismatch. Fails with every probe and the host's firewall.
   */
  async expectPortReach(
    container: string,
    port: number,
    expected: ExpectedReach,
    protocol = 'tcp',
  ): Promise<void> {
    const actual = await this.reach(container, port, protocol);
    const wrong: string[] = [];
    for (const path of ['published', 'direct'] as const) {
      for (const [family, want] of Object.entries(expected[path] ?? {})) {
        const got = actual[path][family as IpFamily];
        if (got !== want)
          wrong.push(
            `${container} ${port}/${protocol} ${path} over ${family}: ${got === undefined ? 'no such path' : got ? 'reached' : 'not reached'}, expected ${want ? 'reached' : 'not reached'}`,
          );
      }
    }
    if (wrong.length > 0) {
      const probes = actual.probes.map(
        (p) => `  ${p.path} ${p.family} ${p.url}: ${p.reached ? 'reached' : 'not reached'}`,
      );
      throw new Error(`${wrong.join('\n')}\nprobes:\n${probes.join('\n')}\n${this.firewall()}`);
    }
  }

  /** Tears down watches, destinations, the sandbox and the policy dir; reports the first problem. */
  async stop(): Promise<void> {
    const problems: unknown[] = [];
    // Before the daemon: a watch outliving it would log reconnects, and hold the lock.
    for (const watch of this.watches.splice(0)) await watch.stop();
    for (const destination of this.destinations.splice(0)) {
      try {
        destination.destroy();
      } catch (error) {
        problems.push(error);
      }
    }
    try {
      await this.box?.stop();
    } catch (error) {
      problems.push(error);
    }
    this.policy.remove();
    if (problems.length > 0) throw problems[0];
  }
}

/**
 * A lab started before the tests of the enclosing describe (then `setup` runs) and stopped after
 * them, also when starting or setup failed.
 */
export function useLab(options: LabOptions = {}, setup?: (lab: Lab) => void | Promise<void>): Lab {
  const lab = new Lab(options);
  beforeAll(async () => {
    await lab.start();
    await setup?.(lab);
  }, 240_000);
  afterAll(() => lab.stop(), 120_000);
  return lab;
}
