/** Runs the built moat CLI inside a test's network namespace, as a user would run it. */
import { afterAll } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** bin/moat, which runs the bundle in dist/bundle/: exactly what a user runs. */
export const CLI = resolve(import.meta.dirname, '../../bin/moat');
const BUNDLE = resolve(import.meta.dirname, '../../dist/bundle/main.js');

export function assertBuilt(): void {
  if (!existsSync(BUNDLE))
    throw new Error(`${BUNDLE} is missing: run \`npm run build\` first (scripts/test.sh does)`);
}

export interface CliResult {
  stdout: string;
  stderr: string;
  status: number;
}

/** Something that can run a command in the host namespace (a DockerSandbox). */
export interface HostRunner {
  execInHost(
    cmd: string,
    args: readonly string[],
    options?: { input?: string; env?: Record<string, string> },
  ): CliResult;
}

export class PolicyDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'moat-policy-'));
  readonly file = join(this.dir, 'firewall.yaml');

  write(text: string): string {
    writeFileSync(this.file, text);
    return this.file;
  }

  read(): string {
    return readFileSync(this.file, 'utf8');
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Run records and the lock of test runs stay in a temp dir, never /var/lib/moat or /run. */
let scratch: string | undefined;
// Registered when a test file imports this module, so it runs after that file's tests.
afterAll(() => {
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
});
export function scratchDir(): string {
  if (scratch === undefined) {
    scratch = mkdtempSync(join(tmpdir(), 'moat-run-'));
  }
  return scratch;
}

/** What every moat a test runs gets: no colour, and the test's own history and lock. */
export function cliEnv(): Record<string, string> {
  return {
    NO_COLOR: '1',
    MOAT_HISTORY_DIR: join(scratchDir(), 'state'),
    MOAT_LOCK_FILE: join(scratchDir(), 'moat.lock'),
  };
}

export function moat(
  host: HostRunner,
  args: readonly string[],
  env: Record<string, string> = {},
): CliResult {
  assertBuilt();
  return host.execInHost(process.execPath, [CLI, ...args], { env: { ...cliEnv(), ...env } });
}
