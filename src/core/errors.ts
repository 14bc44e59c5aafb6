/**
 * One error base class with a code and a source. `user` errors are the user's to fix and are
 * printed as a message; `internal` errors are moat's bugs and print a stack with --debug.
 */

export type ErrorSource = 'user' | 'internal';

/** Exit codes shared by every command. */
export const ExitCode = {
  ok: 0,
  error: 1,
  changes: 2,
  stalePlan: 3,
  lockBusy: 4,
} as const;

export class MoatError extends Error {
  readonly code: string;
  readonly source: ErrorSource;
  readonly exitCode: number;

  constructor(
    message: string,
    options: { code: string; source?: ErrorSource; exitCode?: number; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.source = options.source ?? 'user';
    this.exitCode = options.exitCode ?? ExitCode.error;
  }
}

/** A mistake in what the user gave us: a flag, a file, a path. */
export class UserError extends MoatError {
  constructor(message: string, code = 'usage', exitCode: number = ExitCode.error) {
    super(message, { code, source: 'user', exitCode });
  }
}

/** A program moat ran (iptables-restore, ipset, …) failed. */
export class SubprocessError extends MoatError {
  readonly command: string;
  readonly commandExitCode: number | undefined;
  readonly stderr: string;

  constructor(command: string, commandExitCode: number | undefined, stderr: string) {
    const detail = stderr.trim() === '' ? '' : `:\n${stderr.trim()}`;
    super(`${command} failed (exit ${commandExitCode ?? 'signal'})${detail}`, {
      code: 'subprocess',
      source: 'user',
    });
    this.command = command;
    this.commandExitCode = commandExitCode;
    this.stderr = stderr;
  }
}

/** Something that cannot happen unless moat has a bug. */
export class InternalError extends MoatError {
  constructor(message: string) {
    super(message, { code: 'internal', source: 'internal' });
  }
}
