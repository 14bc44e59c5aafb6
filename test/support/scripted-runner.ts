/**
 * A scripted command runner for unit tests of the use cases: it answers the programs moat runs
 * (iptables, ipset, git, …) with outputs recorded from a real run, and fails the test on any
 * program or standard input the recording does not have. Answers are kept per command line, in
 * order; the last one repeats (a host nobody changes reads the same twice). `answer` injects a
 * fault. With a fallback instead of a script it runs the real programs (through `recording`,
 * which keeps what they answered), so a script is recorded by the very test that replays it
 * (RECORD_TRANSCRIPTS=1, as root: test/app/use-cases.test.ts).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { CommandResult, CommandRunner } from '../../src/core/runner.js';

export interface Exchange {
  readonly command: string;
  readonly args: readonly string[];
  readonly stdin?: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

export interface Call {
  readonly command: string;
  readonly args: readonly string[];
  readonly stdin?: string;
}

/** Text that differs between runs (a temp dir) and is stored as a placeholder instead. */
export type Normalize = (text: string) => string;

const keyOf = (command: string, args: readonly string[]): string => [command, ...args].join(' ');

export class ScriptedRunner {
  /** Every call, in order, normalized. */
  readonly calls: Call[] = [];
  private readonly queues = new Map<string, Exchange[]>();
  private readonly overrides: { match: (call: Call) => boolean; result: CommandResult }[] = [];

  constructor(
    script: readonly Exchange[],
    private readonly normalize: Normalize = (t) => t,
    /** Runs what no override answers instead of the script (recording a new script). */
    private readonly fallback?: CommandRunner,
  ) {
    for (const exchange of script) {
      const key = keyOf(exchange.command, exchange.args);
      this.queues.set(key, [...(this.queues.get(key) ?? []), exchange]);
    }
  }

  static fromFile(path: string, normalize?: Normalize): ScriptedRunner {
    return new ScriptedRunner(JSON.parse(readFileSync(path, 'utf8')) as Exchange[], normalize);
  }

  /** From now on, calls `match` accepts get `result` (fault injection, extra programs). */
  answer(match: (call: Call) => boolean, result: Partial<CommandResult>): this {
    this.overrides.unshift({ match, result: { stdout: '', stderr: '', exitCode: 0, ...result } });
    return this;
  }

  /** The calls of one program, e.g. `iptables-nft-restore`. */
  callsOf(command: string): Call[] {
    return this.calls.filter((c) => c.command === command);
  }

  readonly runner: CommandRunner = (command, args, input) => {
    const call: Call = {
      command,
      args: args.map(this.normalize),
      ...(input === undefined ? {} : { stdin: this.normalize(input) }),
    };
    this.calls.push(call);
    const override = this.overrides.find((o) => o.match(call));
    if (override !== undefined) return Promise.resolve(override.result);
    if (this.fallback !== undefined) return this.fallback(command, args, input);
    const key = keyOf(call.command, call.args);
    const queue = this.queues.get(key);
    const exchange = queue?.[0];
    if (queue === undefined || exchange === undefined) {
      const known = [...this.queues.keys()].join('\n  ');
      return Promise.reject(
        new Error(
          `scripted runner: moat ran \`${key}\`, which the script lacks; it has:\n  ${known}`,
        ),
      );
    }
    if (queue.length > 1) queue.shift();
    if ((exchange.stdin ?? '') !== (call.stdin ?? '')) {
      return Promise.reject(
        new Error(
          `scripted runner: \`${key}\` got other input than recorded.\n--- recorded ---\n${exchange.stdin ?? ''}\n--- now ---\n${call.stdin ?? ''}`,
        ),
      );
    }
    return Promise.resolve({
      stdout: exchange.stdout,
      stderr: exchange.stderr,
      exitCode: exchange.exitCode,
    });
  };
}

/** Wraps a real runner and keeps every exchange, normalized, for `save`. */
export function recording(
  inner: CommandRunner,
  normalize: Normalize,
): { runner: CommandRunner; save: (path: string) => Promise<void> } {
  const exchanges: Exchange[] = [];
  const running = new Set<Promise<unknown>>();
  const record = async (
    command: string,
    args: readonly string[],
    input: string | undefined,
  ): Promise<CommandResult> => {
    // Whole outputs are recorded: the streaming consumer is not passed on.
    const result = await inner(command, args, input);
    exchanges.push({
      command,
      args: args.map(normalize),
      ...(input === undefined ? {} : { stdin: normalize(input) }),
      stdout: normalize(result.stdout),
      stderr: normalize(result.stderr),
      exitCode: result.exitCode,
    });
    return result;
  };
  const runner: CommandRunner = (command, args, input) => {
    const call = record(command, args, input);
    running.add(call);
    void call.finally(() => running.delete(call)).catch(() => undefined);
    return call;
  };
  return {
    runner,
    // Programs a failed use case left running still belong to the script: wait for them.
    save: async (path) => {
      await Promise.allSettled([...running]);
      writeFileSync(path, JSON.stringify(exchanges, null, 2) + '\n');
    },
  };
}
