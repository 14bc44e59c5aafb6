/**
 * One error base class with a code and a source. `user` errors are the user's to fix and are
 * printed as a message; `internal` errors are moat's bugs and print a stack with --debug.
 */
import type { Diagnostic } from './diagnostic.js';

export type ErrorSource = 'user' | 'internal';

/**
 * Every error code moat reports. They appear in `--log-format json` error lines, in `--json`
 * error documents and in run records, so they are part of moat's output format: add codes,
 * never rename one. docs/operations.md ("Error codes") says what each means.
 */
export const ERROR_CODES = [
  'usage',
  'policy-unreadable',
  'invalid-policy',
  'plan-unreadable',
  'bad-plan-file',
  'stale-plan',
  'needs-approval',
  'exists',
  'not-writable',
  'bad-snapshot',
  'docker-host',
  'docker-unreachable',
  'docker-daemon',
  'docker-api',
  'docker-unsupported',
  'missing-external-ipset',
  'host-service-port',
  'tests-unreadable',
  'invalid-tests',
  'bad-question',
  'bad-host-facts',
  'no-iptables',
  'backend-ambiguous',
  'save-parse',
  'subprocess',
  'apply-failed',
  'lock',
  'lock-busy',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Exit codes shared by every command. */
export const ExitCode = {
  ok: 0,
  error: 1,
  changes: 2,
  stalePlan: 3,
  lockBusy: 4,
  /** `moat status`: the last run failed (distinct from 1, moat could not tell). */
  failing: 5,
} as const;

export class MoatError extends Error {
  readonly code: ErrorCode;
  readonly source: ErrorSource;
  readonly exitCode: number;
  /** Where in a file the user wrote the problems are, when that is what went wrong. */
  readonly diagnostics?: readonly Diagnostic[];

  constructor(
    message: string,
    options: {
      code: ErrorCode;
      source?: ErrorSource;
      exitCode?: number;
      cause?: unknown;
      diagnostics?: readonly Diagnostic[];
    },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.source = options.source ?? 'user';
    this.exitCode = options.exitCode ?? ExitCode.error;
    if (options.diagnostics !== undefined) this.diagnostics = options.diagnostics;
  }
}

/** A mistake in what the user gave us: a flag, a file, a path. */
export class UserError extends MoatError {
  constructor(message: string, code: ErrorCode = 'usage', exitCode: number = ExitCode.error) {
    super(message, { code, source: 'user', exitCode });
  }
}

/** The policy file has errors; the diagnostics locate each. */
export class InvalidPolicyError extends MoatError {
  constructor(message: string, diagnostics: readonly Diagnostic[]) {
    super(message, { code: 'invalid-policy', source: 'user', diagnostics });
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
