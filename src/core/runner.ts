import { SubprocessError } from './errors.js';

/** How adapters run programs; tests substitute one to inject faults. */
export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

export interface RunOptions {
  /**
   * Called with stdout as it arrives (whole characters, in order), so a caller can parse
   * while the program still prints; stdout is then not kept, and the result's is empty. A
   * runner may ignore this (a test's runner, say) and return all of stdout as usual: a caller
   * that got no chunk reads the result.
   */
  readonly onStdout?: (chunk: string) => void;
  /**
   * The program changes the firewall: it holds the apply lock this process holds (if any)
   * until it ends, even if moat is killed first, so no other run reads or writes meanwhile.
   */
  readonly holdsLock?: boolean;
}

export type CommandRunner = (
  command: string,
  args: readonly string[],
  input?: string,
  options?: RunOptions,
) => Promise<CommandResult>;

/** Runs and throws a SubprocessError (command, exit code, stderr) on a non-zero exit. */
export async function runChecked(
  runner: CommandRunner,
  command: string,
  args: readonly string[],
  input?: string,
  options?: RunOptions,
): Promise<CommandResult> {
  const result = await runner(command, args, input, options);
  if (result.exitCode !== 0) {
    throw new SubprocessError([command, ...args].join(' '), result.exitCode, result.stderr);
  }
  return result;
}
