/**
 * Throwaway network namespaces for tests. Every iptables/ipset call a test makes runs inside
 * one of these, never in the machine's own namespace.
 */
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface RunResult {
  stdout: string;
  stderr: string;
  status: number;
}

export class NetNs {
  readonly name: string;
  private deleted = false;

  private constructor(name: string) {
    this.name = name;
  }

  /** Creates `moatt-<prefix>-<random>` with loopback up. */
  static create(prefix = 't'): NetNs {
    const name = `moatt-${prefix}-${randomBytes(3).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', name]);
    const ns = new NetNs(name);
    ns.exec('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Path of the namespace file, for `nsenter --net=`. */
  get path(): string {
    return `/var/run/netns/${this.name}`;
  }

  /** Runs a command inside the namespace; throws on a non-zero exit. */
  exec(cmd: string, args: readonly string[], input?: string): string {
    const options: ExecFileSyncOptions = { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] };
    if (input !== undefined) options.input = input;
    return execFileSync('ip', ['netns', 'exec', this.name, cmd, ...args], options) as string;
  }

  /** Runs a command inside the namespace and reports its status instead of throwing. */
  run(cmd: string, args: readonly string[], input?: string): RunResult {
    try {
      return { stdout: this.exec(cmd, args, input), stderr: '', status: 0 };
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; status?: number | null };
      return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', status: e.status ?? -1 };
    }
  }

  /** Deletes the namespace; safe to call twice. */
  destroy(): void {
    if (this.deleted) return;
    this.deleted = true;
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}
