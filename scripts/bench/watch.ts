/**
 * `moat watch` on a benchmark host: what it costs while nothing happens (CPU of watch and of the
 * probes it runs, per hour), and how long after each kind of tampering moat's objects are back.
 *
 * watch runs with its default options (only `--backend` is given: the benchmark's namespaces
 * hold legacy rules while this machine's `iptables` is nft) and `--log-format json`, whose
 * "repaired in" lines carry the time the repair ended. Latency is measured from the moment the
 * tampering command exits (its change is committed by then) to that time.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FakeDockerApi } from './docker-api.js';
import { makeInventory, type BenchInventory } from './host.js';
import { policyYaml } from './policy.js';
import { median } from './report.js';
import { CLI, openBenchHost, type Backend, type Modules } from './scenario.js';

export interface Tampering {
  readonly name: string;
  /** argv, run in the host's namespace; `{iptables}` is the backend's iptables. */
  readonly argv: readonly string[];
}

export const TAMPERINGS: readonly Tampering[] = [
  { name: 'iptables -F MOAT-FORWARD', argv: ['{iptables}', '-w', '-F', 'MOAT-FORWARD'] },
  {
    name: "iptables -D DOCKER-USER (moat's jump)",
    argv: ['{iptables}', '-w', '-D', 'DOCKER-USER', '1'],
  },
  { name: 'iptables -F DOCKER-USER', argv: ['{iptables}', '-w', '-F', 'DOCKER-USER'] },
  { name: 'ip6tables -F MOAT-INPUT', argv: ['{ip6tables}', '-w', '-F', 'MOAT-INPUT'] },
  { name: 'ipset flush moat-allowed', argv: ['ipset', 'flush', 'moat-allowed'] },
  {
    name: "a reload: iptables-restore of the table without moat's rules",
    argv: [
      'sh',
      '-c',
      '{iptables}-save -t filter | grep -v -e moat -e MOAT | {iptables}-restore -w',
    ],
  },
];

/**
 * Not a tampering: Docker starts a container the policy names (its name and ports) after watch's
 * last pass. Measured from the start event to the end of the pass that wrote its rules (watch's
 * default `--debounce 2s` included). The fail-closed defaults hold it meanwhile; with this
 * benchmark's `defaults: allow`, its port is open until then.
 */
export const LATE_CONTAINER = 'a late container (start event → its rules applied)';

/** The columns of the latency table: each tampering, then the late container. */
export const MEASURED: readonly string[] = [...TAMPERINGS.map((t) => t.name), LATE_CONTAINER];

export interface WatchRow {
  readonly backend: Backend;
  readonly foreign: number;
  readonly probes: string;
  /** CPU seconds per hour of watch and its probes while nothing changes. */
  readonly idleCpuPerHour: number;
  readonly idleWindowSeconds: number;
  /** Wall seconds of one read of moat's filter tables and sets with the raw tools. */
  readonly fullRead: number;
  /** Repair latencies in ms, per tampering (NaN: not repaired within the bound). */
  readonly latencies: ReadonlyMap<string, readonly number[]>;
  /** Where each repair's time went, as watch logs it (`stages_ms`), per tampering. */
  readonly stages: Readonly<Record<string, readonly Record<string, number>[]>>;
}

/** The stages watch logs for a repair, in the order they happen. */
const STAGES = ['notice', 'lock', 'read', 'write', 'verify'] as const;

const CLK_TCK = 100;
const REPAIR_BOUND_MS = 15_000;

/** CPU ticks of a process and of its live descendants (and of the children it reaped). */
function treeTicks(root: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      // after the name: state ppid … utime(14) stime(15) cutime(16) cstime(17), 1-based from pid
      const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
      stats.set(pid, { ppid: Number(fields[1]), ticks });
    } catch {
      // gone meanwhile
    }
  }
  let total = 0;
  const inTree = (pid: number): boolean => {
    for (let p = pid, depth = 0; p > 1 && depth < 20; depth++) {
      if (p === root) return true;
      p = stats.get(p)?.ppid ?? 0;
    }
    return false;
  };
  for (const [pid, s] of stats) if (inTree(pid)) total += s.ticks;
  return total;
}

/** Watches still running, stopped (by pid) however the benchmark ends, a signal included. */
const running = new Set<RunningWatch>();
let exitHooked = false;

class RunningWatch {
  readonly child: ChildProcessWithoutNullStreams;
  lines: { at: number; doc: Record<string, unknown> }[] = [];
  private rest = '';
  private stderrTail = '';
  /** How the watch ended, once it has. */
  private ended: string | undefined;
  private readonly exited: Promise<void>;

  constructor(ns: string, args: readonly string[], env: NodeJS.ProcessEnv) {
    // `ip netns exec` execs the program: the pid is node's.
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, 'watch', ...args], {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...env },
      stdio: 'pipe',
    });
    running.add(this);
    if (!exitHooked) {
      exitHooked = true;
      // A benchmark stopped by a signal (netns.ts exits on SIGINT/SIGTERM) stops its watch too,
      // instead of leaving it running in a namespace nobody can name any more.
      process.once('exit', () => {
        for (const watch of running) watch.child.kill('SIGTERM');
      });
    }
    // Registered at once: a watch that dies early is known to have, whenever anyone asks.
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.ended = signal === null ? `exit code ${code ?? '?'}` : `signal ${signal}`;
        running.delete(this);
        resolve();
      });
    });
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const text = this.rest + chunk;
      const parts = text.split('\n');
      this.rest = parts.pop() ?? '';
      for (const line of parts) {
        try {
          this.lines.push({ at: Date.now(), doc: JSON.parse(line) as Record<string, unknown> });
        } catch {
          // not a JSON line
        }
      }
    });
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-2000);
      process.stderr.write(`    watch: ${chunk}`);
    });
  }

  /** The first line from `from` on that passes `test`; undefined after `timeoutMs`. Throws when watch has died. */
  async waitFor(
    test: (doc: Record<string, unknown>) => boolean,
    from: number,
    timeoutMs: number,
  ): Promise<Record<string, unknown> | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.slice(from).find((l) => test(l.doc));
      if (found !== undefined) return found.doc;
      if (this.ended !== undefined) {
        throw new Error(
          `moat watch ended (${this.ended}) while the benchmark waited for it; its stderr: ` +
            (this.stderrTail.trim() || '(none)'),
        );
      }
      if (Date.now() > deadline) return undefined;
      await sleep(10);
    }
  }

  /** SIGTERM, SIGKILL after 15 s; returns at once when watch has already ended. */
  async stop(): Promise<void> {
    if (this.ended !== undefined) return;
    this.child.kill('SIGTERM');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(killer);
  }
}

function message(doc: Record<string, unknown>): string {
  return typeof doc.message === 'string' ? doc.message : '';
}

function run(ns: string, argv: readonly string[]): Promise<number> {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      resolve(code ?? -1);
    });
  });
}

export async function watchScenario(
  backend: Backend,
  foreign: number,
  api: FakeDockerApi,
  modules: Modules,
  options: { idleSeconds: number; repeats: number; log: (text: string) => void },
): Promise<WatchRow> {
  const bench = await openBenchHost(backend, foreign, 10, api, modules);
  let watch: RunningWatch | undefined;
  try {
    const s = bench.scenario;
    const fullRead = (await s.rawRead('filter')).total;
    // The policy also names one more container than Docker runs: the late one.
    const withLate = makeInventory(bench.inventory.containers.length + 1);
    const late = withLate.containers.at(-1);
    if (late === undefined) throw new Error('no late container');
    const policy = join(bench.dir, 'with-late.yaml');
    writeFileSync(policy, policyYaml(withLate));
    watch = new RunningWatch(
      bench.ns.name,
      ['-f', policy, '--backend', backend, '--log-format', 'json'],
      {
        DOCKER_HOST: `unix://${api.socketPath}`,
        MOAT_LOCK_FILE: `${bench.dir}/moat.lock`,
        MOAT_HISTORY_DIR: `${bench.dir}/state`,
      },
    );
    const noticing = await watch.waitFor(
      (d) => message(d).startsWith('noticing changes'),
      0,
      60_000,
    );
    if (noticing === undefined) throw new Error('watch did not start noticing changes in 60 s');
    const probes = message(noticing).replace('noticing changes with ', '');
    const pid = watch.child.pid ?? 0;
    // The start pass's own changes are looked at (a full read, on legacy) before idle begins:
    // wait for two quiet seconds in a row (at most 60 s).
    for (let quiet = 0, i = 0; quiet < 2 && i < 60; i++) {
      const t0 = treeTicks(pid);
      await sleep(1000);
      quiet = treeTicks(pid) - t0 <= 1 ? quiet + 1 : 0;
    }

    const before = treeTicks(pid);
    await sleep(options.idleSeconds * 1000);
    const idleCpu = (treeTicks(pid) - before) / CLK_TCK;
    const idleCpuPerHour = (idleCpu / options.idleSeconds) * 3600;

    const latencies = new Map<string, number[]>();
    const stages: Record<string, Record<string, number>[]> = {};
    const tool = (name: string): string =>
      `${name}-${backend}`; /* iptables-nft, ip6tables-legacy, … */
    for (let round = 0; round < options.repeats; round++) {
      const roundStarted = Date.now();
      for (const tampering of TAMPERINGS) {
        const argv = tampering.argv.map((a) =>
          a.replace(/\{(ip6?tables)\}/g, (_m, name: string) => tool(name)),
        );
        const from = watch.lines.length;
        const code = await run(bench.ns.name, argv);
        const done = Date.now();
        if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}`);
        const repaired = await watch.waitFor(
          (d) => message(d).startsWith('repaired in'),
          from,
          REPAIR_BOUND_MS,
        );
        const at = typeof repaired?.time === 'string' ? Date.parse(repaired.time) : Number.NaN;
        const list = latencies.get(tampering.name) ?? [];
        list.push(at - done);
        latencies.set(tampering.name, list);
        if (typeof repaired?.stages_ms === 'object' && repaired.stages_ms !== null) {
          (stages[tampering.name] ??= []).push(repaired.stages_ms as Record<string, number>);
        }
        // Apart enough that repeating one tampering never looks like a fight (5 in 10 s).
        await sleep(2500);
      }
      const list = latencies.get(LATE_CONTAINER) ?? [];
      list.push(await lateContainer(watch, api, { with: withLate, without: bench.inventory }));
      latencies.set(LATE_CONTAINER, list);
      // A case runs for minutes: say that it moves.
      options.log(
        `    watch ${backend} ${foreign}: round ${round + 1}/${options.repeats} in ` +
          `${((Date.now() - roundStarted) / 1000).toFixed(0)} s, load ${loadavg()[0]?.toFixed(2) ?? '?'}`,
      );
    }
    const row: WatchRow = {
      backend,
      foreign,
      probes,
      idleCpuPerHour,
      idleWindowSeconds: options.idleSeconds,
      fullRead,
      latencies,
      stages,
    };
    options.log(
      `  watch ${backend} ${foreign} foreign: idle ${idleCpuPerHour.toFixed(1)} CPU s/h; ` +
        [...latencies]
          .map(
            ([name, ms]) => `${name.split(' ').slice(0, 3).join(' ')} ${median(ms).toFixed(0)} ms`,
          )
          .join(', '),
    );
    options.log(
      `    where a repair's time went (median ms, ${STAGES.join('/')}): ` +
        Object.entries(stages)
          .map(
            ([name, list]) =>
              `${name.split(' ').slice(0, 3).join(' ')} ` +
              STAGES.map((stage) => median(list.map((l) => l[stage] ?? 0)).toFixed(0)).join('/'),
          )
          .join(', '),
    );
    return row;
  } finally {
    await watch?.stop();
    bench.close();
  }
}

/** When the pass after `from` that changed the host ended (its run record's start + duration). */
async function passEnd(watch: RunningWatch, from: number): Promise<number> {
  const pass = await watch.waitFor(
    (d) => d.event === 'apply' && d.result === 'changed',
    from,
    REPAIR_BOUND_MS,
  );
  if (typeof pass?.time !== 'string' || typeof pass.duration_ms !== 'number') return Number.NaN;
  return Date.parse(pass.time) + pass.duration_ms;
}

/**
 * Docker starts the late container: from the start event to the end of watch's pass that wrote
 * its rules. Then it goes again (not measured), so that the next round starts the same.
 */
async function lateContainer(
  watch: RunningWatch,
  api: FakeDockerApi,
  inventories: { with: BenchInventory; without: BenchInventory },
): Promise<number> {
  const name = inventories.with.containers.at(-1)?.name ?? '';
  let from = watch.lines.length;
  api.serve(inventories.with);
  const started = Date.now();
  api.emit('container', 'start', name);
  const latency = (await passEnd(watch, from)) - started;
  from = watch.lines.length;
  api.serve(inventories.without);
  api.emit('container', 'destroy', name);
  await passEnd(watch, from);
  await sleep(2500);
  return latency;
}
