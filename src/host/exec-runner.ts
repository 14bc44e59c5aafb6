import { execa } from 'execa';
import type { CommandResult, CommandRunner } from '../core/runner.js';
import { SubprocessError } from '../core/errors.js';

/** Runs a program with execa; never throws for a non-zero exit, only when it cannot start. */
export const execRunner: CommandRunner = async (command, args, input) => {
  const result = await execa(command, [...args], {
    reject: false,
    stripFinalNewline: false,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
    env: { LC_ALL: 'C' },
  });
  if (result.failed && result.exitCode === undefined) {
    const notFound = (result as { code?: string }).code === 'ENOENT';
    const why = notFound
      ? `${command} is not installed or not on PATH`
      : (result.shortMessage ?? 'could not start');
    throw new SubprocessError(command, undefined, why);
  }
  return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode ?? -1 };
};

/** Runs and throws a SubprocessError (command, exit code, stderr) on a non-zero exit. */
export async function runChecked(
  runner: CommandRunner,
  command: string,
  args: readonly string[],
  input?: string,
): Promise<CommandResult> {
  const result = await runner(command, args, input);
  if (result.exitCode !== 0) {
    throw new SubprocessError([command, ...args].join(' '), result.exitCode, result.stderr);
  }
  return result;
}
