/**
 * A use case's context for unit tests: output into buffers, standard input from a string, a
 * view of the test's choosing, and a command runner that refuses to run anything unless the
 * test gives one (a scripted runner, test/support/scripted-runner.ts).
 */
import type { Context } from '../../src/app/context.js';
import type { Io } from '../../src/app/io.js';
import { createView, type ViewKind } from '../../src/app/view.js';
import type { CommandRunner } from '../../src/core/runner.js';

export interface BufferContext {
  readonly ctx: Context;
  /** Everything written to stdout so far. */
  readonly out: () => string;
  /** Everything written to stderr so far. */
  readonly err: () => string;
}

export function bufferContext(
  options: {
    kind?: ViewKind;
    runner?: CommandRunner;
    env?: Record<string, string>;
    stdin?: string;
    interactive?: boolean;
    /** What the person at the terminal answers, in order. */
    answers?: string[];
  } = {},
): BufferContext {
  const out: string[] = [];
  const err: string[] = [];
  const answers = [...(options.answers ?? [])];
  const io: Io = {
    out: (text) => out.push(text),
    err: (text) => err.push(text),
    interactive: options.interactive ?? false,
    ask: (question) => {
      out.push(question);
      return Promise.resolve(answers.shift() ?? '');
    },
    readStdin: (maxBytes) =>
      Promise.resolve(Buffer.from(options.stdin ?? '', 'utf8').subarray(0, maxBytes + 1)),
  };
  const refuse: CommandRunner = (command, args) =>
    Promise.reject(
      new Error(`this test runs no programs, but moat ran ${command} ${args.join(' ')}`),
    );
  const ctx: Context = {
    io,
    runner: options.runner ?? refuse,
    env: options.env ?? {},
    view: createView(io, { kind: options.kind ?? 'text', color: false }),
    // This machine's own sockets and interfaces are none of a unit test's business.
    readSystem: () => Promise.resolve({}),
  };
  return { ctx, out: () => out.join(''), err: () => err.join('') };
}
