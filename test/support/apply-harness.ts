/**
 * Helpers for tests that run `moat apply` against a DockerSandbox as processes of their own:
 * started in parallel, killed at a chosen instant, and moat's objects read back afterwards.
 * Every process started here is stopped by its pid (or its own process group).
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DockerSandbox } from './docker-sandbox.js';
import { assertBuilt, CLI, type CliResult } from './moat-cli.js';
import { httpStatusInAsync } from './reach.js';

/** A moat process running in the sandbox's host namespace. */
export interface RunningMoat {
  /** The node process's pid (nsenter --net execs without forking), also its process group. */
  readonly pid: number;
  readonly done: Promise<CliResult & { signal: NodeJS.Signals | null }>;
  /** What it printed so far, while it runs; `all`: both streams in the order they came. */
  readonly output: () => { stdout: string; stderr: string; all: string };
}

/**
 * Starts the built CLI in the host namespace, in a process group of its own so that it and
 * the iptables-restore/ipset children it starts can be waited for, or killed, together.
 */
export function startMoat(
  sandbox: DockerSandbox,
  args: readonly string[],
  env: Record<string, string> = {},
): RunningMoat {
  assertBuilt();
  const child = spawn('nsenter', [`--net=${sandbox.host.path}`, process.execPath, CLI, ...args], {
    env: { ...process.env, NO_COLOR: '1', ...sandbox.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  if (child.pid === undefined) throw new Error('could not start moat');
  let stdout = '';
  let stderr = '';
  let all = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    all += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    all += chunk;
  });
  const done = new Promise<CliResult & { signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (error) => {
      resolve({ stdout, stderr: stderr + error.message, status: -1, signal: null });
    });
    child.on('close', (status, signal) => {
      resolve({ stdout, stderr, status: status ?? -1, signal });
    });
  });
  return { pid: child.pid, done, output: () => ({ stdout, stderr, all }) };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits (bounded) until no process of the group is left: after a SIGKILL of moat alone, an
 * iptables-restore it started runs on to its end, and the host is only settled after that.
 */
export async function waitGroupGone(pgid: number, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1_000 && Date.now() < deadline; i++) {
    if (!groupAlive(pgid)) return true;
    await sleep(20);
  }
  return !groupAlive(pgid);
}

/** SIGKILL to moat alone, or to its whole process group (moat and the tools it runs). */
export function kill9(pid: number, whole: 'process' | 'group'): void {
  try {
    process.kill(whole === 'group' ? -pid : pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** The HTTP status the wan client gets, without blocking the event loop ('000' = not reached). */
export function httpStatusFromWanAsync(sandbox: DockerSandbox, url: string): Promise<string> {
  return httpStatusInAsync(sandbox.wan, url);
}

/** Rules (`-A` lines) of one family's filter table by chain; every declared chain is a key. */
export function filterRules(
  sandbox: DockerSandbox,
  family: 'ipv4' | 'ipv6',
): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  for (const line of sandbox.save(family, 'filter').split('\n')) {
    const declared = /^:(\S+) /.exec(line)?.[1];
    if (declared !== undefined) chains.set(declared, chains.get(declared) ?? []);
    const match = /^-A (\S+) /.exec(line);
    if (match?.[1] === undefined) continue;
    const rules = chains.get(match[1]) ?? [];
    rules.push(line);
    chains.set(match[1], rules);
  }
  return chains;
}

/** Names of the ipsets in the host namespace. */
export function ipsetNames(sandbox: DockerSandbox): string[] {
  const result = sandbox.execInHost('ipset', ['list', '-n']);
  if (result.status !== 0) throw new Error(`ipset list failed: ${result.stderr}`);
  return result.stdout.split('\n').filter((name) => name !== '');
}
