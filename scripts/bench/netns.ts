/**
 * Throwaway network namespaces for the benchmark, and timed runs of programs inside them. Every
 * iptables/ipset call the benchmark makes runs in one of these, never in the machine's own
 * namespace. Namespaces are registered so an interrupted run still removes them.
 */
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What one timed run of a program cost. */
export interface Timed {
  readonly seconds: number;
  /** Peak resident set of the largest process of the run, in MiB (undefined without /usr/bin/time). */
  readonly peakMiB: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

const TIME = '/usr/bin/time';
const HAVE_TIME = existsSync(TIME);
const live = new Set<BenchNs>();
const scratch = mkdtempSync(join(tmpdir(), 'moat-bench-time-'));
let counter = 0;

/** Removes every namespace still open; safe to call more than once. */
export function destroyAll(): void {
  for (const ns of [...live]) ns.destroy();
  rmSync(scratch, { recursive: true, force: true });
}

let hooked = false;
function hookCleanup(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', destroyAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      destroyAll();
      process.exit(130);
    });
  }
}

/**
 * Runs `command args` (optionally inside a namespace), feeding `input` on stdin, and measures
 * its wall time and peak memory. Never throws for a non-zero exit.
 */
export function timedRun(
  command: string,
  args: readonly string[],
  options: { ns?: string; input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<Timed> {
  const inner =
    options.ns === undefined
      ? [command, ...args]
      : ['ip', 'netns', 'exec', options.ns, command, ...args];
  const rssFile = join(scratch, `rss-${process.pid}-${counter++}`);
  const argv = HAVE_TIME ? [TIME, '-f', '%M', '-o', rssFile, ...inner] : inner;
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        LC_ALL: 'C',
        PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
        ...options.env,
      },
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.stdin.on('error', () => {
      // the program may exit before reading all its input; its exit code tells the story
    });
    child.stdin.end(options.input ?? '');
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      let peakMiB: number | undefined;
      if (HAVE_TIME && existsSync(rssFile)) {
        // time(1) prints "Command exited with non-zero status N" before the figure on failure.
        const lines = readFileSync(rssFile, 'utf8').trim().split('\n');
        const kib = Number(lines[lines.length - 1]);
        if (Number.isFinite(kib)) peakMiB = kib / 1024;
        rmSync(rssFile, { force: true });
      }
      resolve({
        seconds,
        peakMiB,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        exitCode: code ?? -1,
      });
    });
  });
}

/** Like timedRun, but throws with the program's stderr on a non-zero exit. */
export async function timedChecked(
  command: string,
  args: readonly string[],
  options: { ns?: string; input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<Timed> {
  const result = await timedRun(command, args, options);
  if (result.exitCode !== 0) {
    throw new Error(
      `${[command, ...args].join(' ')} exited ${result.exitCode}: ${result.stderr.trim().slice(0, 2000)}`,
    );
  }
  return result;
}

export class BenchNs {
  readonly name: string;
  private deleted = false;

  private constructor(name: string) {
    this.name = name;
  }

  /** Creates `moatb-<prefix>-<random>` with loopback up. */
  static create(prefix: string): BenchNs {
    hookCleanup();
    const name = `moatb-${prefix}-${randomBytes(3).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', name]);
    const ns = new BenchNs(name);
    live.add(ns);
    execFileSync('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
    return ns;
  }

  run(
    command: string,
    args: readonly string[],
    options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ): Promise<Timed> {
    return timedRun(command, args, { ...options, ns: this.name });
  }

  checked(
    command: string,
    args: readonly string[],
    options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
  ): Promise<Timed> {
    return timedChecked(command, args, { ...options, ns: this.name });
  }

  /** Deletes the namespace (its iptables tables and ipsets go with it); safe to call twice. */
  destroy(): void {
    if (this.deleted) return;
    this.deleted = true;
    live.delete(this);
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}
