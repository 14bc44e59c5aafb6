/**
 * How a command speaks: text for people, one JSON document (`--json`), or one JSON object per
 * line (`--log-format json`). The CLI picks the view once per run and passes it down; a use case
 * hands the view both renderings of what it has to say and never asks which one is wanted.
 *
 * In every view stdout carries the result and stderr is for people (diagnostics, warnings,
 * errors), except in the JSON-lines view, where warnings and errors are JSON lines on stderr too.
 * A `--json` command that fails still prints one JSON document: `{"error": {code, message}}`.
 */
import type { Diagnostic } from '../core/diagnostic.js';
import { MoatError, ExitCode, type ErrorCode } from '../core/errors.js';
import { formatDiagnostic } from '../policy/format.js';
import type { Io } from './io.js';

export type ViewKind = 'text' | 'json' | 'json-lines';

export interface View {
  readonly kind: ViewKind;
  /** Whether text output may use ANSI colours (never in JSON). */
  readonly color: boolean;
  /** The command's result on stdout: the text for people, or the JSON document. */
  result(text: () => string, json: () => unknown): void;
  /** A note for people on stdout (a hint, a confirmation); JSON views leave it out. */
  note(text: string): void;
  /** Located diagnostics of a file the user wrote: code frames on stderr. */
  diagnostics(list: readonly Diagnostic[], source: string): void;
  /**
   * One event of an unattended run: `text` (when given) on stdout, or a JSON line
   * `{level: "info", event, time, ...fields}`; the document view prints nothing.
   */
  event(event: string, fields: Readonly<Record<string, unknown>>, text?: string): void;
  /** A warning for whoever reads stderr. */
  warn(message: string): void;
  /** An error that does not end the command (a failed pass of `watch`). */
  report(error: unknown, context?: string): void;
  /** Reports the error that ends the command and returns the exit code to end with. */
  failure(error: unknown, options: { readonly debug: boolean }): number;
}

interface ErrorFacts {
  readonly code: ErrorCode;
  readonly message: string;
  readonly user: boolean;
  readonly exitCode: number;
  readonly diagnostics?: readonly Diagnostic[];
}

function factsOf(error: unknown, context?: string): ErrorFacts {
  const message = error instanceof Error ? error.message : String(error);
  const prefixed = context === undefined ? message : `${context}: ${message}`;
  if (error instanceof MoatError) {
    return {
      code: error.code,
      message: prefixed,
      user: error.source === 'user',
      exitCode: error.exitCode,
      ...(error.diagnostics === undefined ? {} : { diagnostics: error.diagnostics }),
    };
  }
  return { code: 'internal', message: prefixed, user: false, exitCode: ExitCode.error };
}

/** The error as people read it on stderr, with the stack of a bug when asked for. */
function errorText(io: Io, error: unknown, facts: ErrorFacts, debug: boolean): void {
  if (facts.user) {
    io.err(`moat: ${facts.message}\n`);
    return;
  }
  io.err(`moat: internal error (this is a bug): ${facts.message}\n`);
  if (debug && error instanceof Error) io.err(`${error.stack ?? ''}\n`);
  else io.err('Run again with --debug to see the stack trace.\n');
}

function textView(io: Io, color: boolean, kind: 'text' | 'json'): View {
  return {
    kind,
    color,
    result(text, json) {
      io.out(kind === 'json' ? JSON.stringify(json(), null, 2) + '\n' : text());
    },
    note(text) {
      if (kind === 'text') io.out(text);
    },
    diagnostics(list, source) {
      for (const d of list) io.err(formatDiagnostic(d, source, { color }) + '\n');
    },
    event(_event, _fields, text) {
      if (kind === 'text' && text !== undefined) io.out(text);
    },
    warn(message) {
      io.err(`moat: warning: ${message}\n`);
    },
    report(error, context) {
      io.err(`moat: ${factsOf(error, context).message}\n`);
    },
    failure(error, { debug }) {
      const facts = factsOf(error);
      if (kind === 'json') {
        const doc = {
          error: {
            code: facts.code,
            message: facts.message,
            ...(facts.diagnostics === undefined ? {} : { diagnostics: facts.diagnostics }),
          },
        };
        io.out(JSON.stringify(doc, null, 2) + '\n');
      }
      errorText(io, error, facts, debug);
      return facts.exitCode;
    },
  };
}

function jsonLinesView(io: Io, now: () => Date): View {
  const line = (level: string, event: string, fields: Readonly<Record<string, unknown>>): string =>
    JSON.stringify({ level, event, time: now().toISOString(), ...fields }) + '\n';
  const errorLine = (facts: ErrorFacts): string =>
    line('error', 'error', { code: facts.code, message: facts.message });
  return {
    kind: 'json-lines',
    color: false,
    result(_text, json) {
      io.out(JSON.stringify(json()) + '\n');
    },
    note() {
      // notes are for people; a log stream has none
    },
    diagnostics(list) {
      for (const d of list) io.err(line(d.severity, 'diagnostic', { ...d }));
    },
    event(event, fields) {
      io.out(line('info', event, fields));
    },
    warn(message) {
      io.err(line('warning', 'warning', { message }));
    },
    report(error, context) {
      io.err(errorLine(factsOf(error, context)));
    },
    failure(error, { debug }) {
      const facts = factsOf(error);
      io.err(errorLine(facts));
      if (!facts.user) errorText(io, error, facts, debug);
      return facts.exitCode;
    },
  };
}

export function createView(
  io: Io,
  options: { readonly kind: ViewKind; readonly color: boolean; readonly now?: () => Date },
): View {
  if (options.kind === 'json-lines') return jsonLinesView(io, options.now ?? (() => new Date()));
  return textView(io, options.kind === 'text' && options.color, options.kind);
}

/**
 * Colour when asked for, on a terminal, and unless NO_COLOR is set to a non-empty value
 * (https://no-color.org: an empty NO_COLOR does not count).
 */
export function wantsColor(options: {
  readonly flag: boolean;
  readonly terminal: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
}): boolean {
  return options.flag && options.terminal && (options.env.NO_COLOR ?? '') === '';
}
