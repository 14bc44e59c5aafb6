/**
 * A `moat watch` running in a Docker host's namespace as a user runs it (the built CLI, the
 * test's own history dir and lock, so `lab.moat(['status'])` sees it): what it printed, as it
 * comes; bounded waits for a line; a pause (SIGSTOP) that holds it still while a test changes
 * the firewall behind its back; and a stop that leaves none of its processes behind.
 * Start one with `lab.startWatch(args)`: the lab stops it before its daemon if a test did not.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { kill9, startMoat, waitGroupGone, type RunningMoat } from './apply-harness.js';
import type { DockerSandbox } from './docker-sandbox.js';
import { cliEnv } from './moat-cli.js';

const STOP_GRACE_MS = 15_000;

export class RunningWatch {
  private readonly run: RunningMoat;
  private stopping: Promise<number | null> | undefined;
  /** Once it has exited, its pid is no longer ours to signal. */
  private exited = false;

  constructor(sandbox: DockerSandbox, args: readonly string[], env: Record<string, string> = {}) {
    this.run = startMoat(sandbox, ['watch', ...args], { ...cliEnv(), ...env });
    void this.run.done.then(() => (this.exited = true));
  }

  /** The node process's pid, also its process group (its probes and restores are in it). */
  get pid(): number {
    return this.run.pid;
  }

  /** Everything it printed so far, stdout and stderr in the order they came. */
  get output(): string {
    return this.run.output().all;
  }

  /** Waits (bounded) until the output has `text` after position `from`; whether it came. */
  async waitFor(text: string | RegExp, timeoutMs: number, from = 0): Promise<boolean> {
    const seen = (): boolean => {
      const rest = this.output.slice(from);
      return typeof text === 'string' ? rest.includes(text) : text.test(rest);
    };
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 100_000 && !seen() && Date.now() < deadline; i++) await sleep(20);
    return seen();
  }

  /**
   * SIGSTOP to watch alone: its probes go on and their notices wait in the pipe, so after
   * `resume` it sees every change made meanwhile, as if they had all come at that instant.
   */
  pause(): void {
    this.signal('SIGSTOP');
  }

  resume(): void {
    this.signal('SIGCONT');
  }

  /**
   * SIGTERM and its exit code (null: it had to be killed). Waits until every process it
   * started is gone too, killing the leftovers. Idempotent: a second call gets the same result.
   */
  stop(): Promise<number | null> {
    this.stopping ??= this.terminate();
    return this.stopping;
  }

  private async terminate(): Promise<number | null> {
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    const ended = await Promise.race([
      this.run.done,
      sleep(STOP_GRACE_MS, undefined, { ref: false }),
    ]);
    if (ended === undefined) kill9(this.pid, 'group');
    const result = ended ?? (await this.run.done);
    if (!(await waitGroupGone(this.pid, 5_000))) {
      kill9(this.pid, 'group');
      await waitGroupGone(this.pid, 5_000);
    }
    return ended === undefined || result.signal !== null ? null : result.status;
  }

  private signal(name: NodeJS.Signals): void {
    if (this.exited) return;
    try {
      process.kill(this.pid, name);
    } catch {
      // exited meanwhile
    }
  }
}
