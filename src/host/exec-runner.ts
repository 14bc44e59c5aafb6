/**
 * Runs programs for the adapters. Built on node:child_process directly: moat runs a few short
 * programs with an optional stdin and needs their exit code and output, nothing more, and
 * loading execa cost ~30 ms of every run (docs/performance.md).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { CommandResult, CommandRunner } from '../core/runner.js';
import { SubprocessError } from '../core/errors.js';
import { heldLockFds } from './lock.js';

function startFailure(command: string, error: NodeJS.ErrnoException): SubprocessError {
  const why =
    error.code === 'ENOENT'
      ? `${command} is not installed or not on PATH`
      : `could not start: ${error.message}`;
  return new SubprocessError(command, undefined, why);
}

/**
 * Runs a program with `input` on its stdin (or an empty one) in the C locale, so tools print what the
 * parsers expect. Never throws for a non-zero exit; only when the program cannot start or is
 * killed by a signal.
 */
export const execRunner: CommandRunner = (command, args, input, options) =>
  new Promise<CommandResult>((resolve, reject) => {
    const child = spawn(command, [...args], {
      env: { ...process.env, LC_ALL: 'C' },
      // A program that writes the firewall holds the apply lock too (as fd 3), until it ends:
      // a run killed while its iptables-restore still writes keeps the next one out till then.
      stdio: ['pipe', 'pipe', 'pipe', ...(options?.holdsLock === true ? heldLockFds() : [])],
    }) as ChildProcessWithoutNullStreams; // stdin, stdout and stderr are pipes
    const stdout: string[] = [];
    const stderr: Buffer[] = [];
    // Decoded as it arrives: a character split between two reads is never cut in half.
    child.stdout.setEncoding('utf8');
    const onStdout = options?.onStdout;
    let consumerError: Error | undefined;
    child.stdout.on('data', (chunk: string) => {
      if (onStdout === undefined) stdout.push(chunk);
      else if (consumerError === undefined) {
        // A throw here would escape as an uncaught exception: keep it for the caller instead.
        try {
          onStdout(chunk);
        } catch (error) {
          consumerError = error instanceof Error ? error : new Error('stdout consumer failed');
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => {
      reject(startFailure(command, error));
    });
    child.on('close', (code, signal) => {
      const err = Buffer.concat(stderr).toString('utf8');
      if (consumerError !== undefined) {
        reject(consumerError);
        return;
      }
      if (code === null) {
        reject(new SubprocessError(command, undefined, `killed by ${signal ?? 'a signal'}`));
        return;
      }
      resolve({ stdout: stdout.join(''), stderr: err, exitCode: code });
    });
    // A program may exit without reading all of its input; its exit code tells what happened.
    child.stdin.on('error', () => undefined);
    if (input === undefined) child.stdin.end();
    else child.stdin.end(input);
  });
