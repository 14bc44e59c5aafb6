/** The process runner every adapter uses, against real programs. */
import { describe, expect, test } from '@jest/globals';
import { SubprocessError } from '../../src/core/errors.js';
import { runChecked } from '../../src/core/runner.js';
import { execRunner } from '../../src/host/exec-runner.js';

describe('execRunner', () => {
  test('captures stdout and stderr whole, and the exit code', async () => {
    const result = await execRunner('sh', ['-c', 'printf "out\\n"; printf "err" >&2; exit 3']);
    expect(result).toEqual({ stdout: 'out\n', stderr: 'err', exitCode: 3 });
  });

  test('delivers stdin, and several MiB of output arrive intact', async () => {
    const input = 'x'.repeat(4 * 1024 * 1024) + '\nend\n';
    const result = await execRunner('cat', [], input);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe(input);
  });

  test('a program that exits without reading its input is not an error of the runner', async () => {
    const result = await execRunner('sh', ['-c', 'exit 0'], 'y'.repeat(1024 * 1024));
    expect(result.exitCode).toBe(0);
  });

  test('streams stdout in whole characters as it arrives, and then does not keep it', async () => {
    const chunks: string[] = [];
    // 200 KB of two- and three-byte characters: many reads, some ending inside a character.
    const script =
      'i=0; while [ $i -lt 40000 ]; do printf "\\303\\251\\342\\202\\254"; i=$((i+1)); done';
    const result = await execRunner('sh', ['-c', script], undefined, {
      onStdout: (chunk) => chunks.push(chunk),
    });
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join('')).toBe('é€'.repeat(40000));
    expect(result).toEqual({ stdout: '', stderr: '', exitCode: 0 });
  });

  test('a stdout consumer that throws rejects the run instead of crashing the process', async () => {
    const run = execRunner('sh', ['-c', 'echo one; echo two'], undefined, {
      onStdout: () => {
        throw new Error('consumer broke');
      },
    });
    await expect(run).rejects.toThrow('consumer broke');
  });

  test('runs in the C locale, so tools print what the parsers expect', async () => {
    const result = await execRunner('sh', ['-c', 'printf "%s" "$LC_ALL"']);
    expect(result.stdout).toBe('C');
  });

  test('a missing program is a SubprocessError that says so', async () => {
    const run = execRunner('moat-no-such-program', []);
    await expect(run).rejects.toBeInstanceOf(SubprocessError);
    await expect(run).rejects.toThrow(/moat-no-such-program is not installed or not on PATH/);
  });

  test('a program killed by a signal is an error, not an exit code', async () => {
    await expect(execRunner('sh', ['-c', 'kill -KILL $$'])).rejects.toThrow(/killed by SIGKILL/);
  });

  test('runChecked names the command, exit code and stderr of a failure', async () => {
    await expect(runChecked(execRunner, 'sh', ['-c', 'echo nope >&2; exit 4'])).rejects.toThrow(
      /sh -c echo nope >&2; exit 4.*4.*nope/s,
    );
  });
});
