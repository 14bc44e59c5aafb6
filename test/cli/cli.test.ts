/**
 * The built CLI, as a user runs it, on what needs no root and no Docker (a policy, standard
 * input, the bundled snapshot): option names and their deprecated old names, `-f -`, JSON output
 * that stays JSON when the command fails, and status's exit codes.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode } from '../../src/core/errors.js';
import { CLI, assertBuilt } from '../support/moat-cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SNAPSHOT = join(ROOT, 'examples/snapshot-docker-20.10');
const HOST_ONLY = readFileSync(join(ROOT, 'examples/host-only-port/firewall.yaml'), 'utf8');

let dir = '';

beforeAll(() => {
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), 'moat-cli-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function moat(
  args: readonly string[],
  options: { input?: string; env?: Record<string, string | undefined>; cwd?: string } = {},
) {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    NO_COLOR: '1',
    DOCKER_HOST: `unix://${join(dir, 'no-docker.sock')}`,
    MOAT_HISTORY_DIR: join(dir, 'history'),
    ...options.env,
  };
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? dir,
    encoding: 'utf8',
    input: options.input ?? '',
    // No Docker and no run history of this machine: everything in the test's directory.
    env: Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)),
    timeout: 30_000,
  });
  return { stdout: result.stdout, stderr: result.stderr, status: result.status };
}

function policyFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('option names', () => {
  test('--snapshot plans against a snapshot; the old --state still works, with a note', () => {
    const file = policyFile('host-only.yaml', HOST_ONLY);
    const now = moat(['plan', '-f', file, '--snapshot', SNAPSHOT]);
    expect(now.stderr).toBe('');
    expect(now.stdout).toContain('ghost 2368/tcp: reachable from host only');
    const old = moat(['plan', '-f', file, '--state', SNAPSHOT]);
    expect(old.stdout).toBe(now.stdout);
    expect(old.stderr).toBe(
      'moat: warning: --state is deprecated and will be removed; use --snapshot\n',
    );
  });

  test('--history-dir names the run history; --state-dir and MOAT_STATE_DIR still work, with a note', () => {
    const file = policyFile('history.yaml', HOST_ONLY);
    const history = join(dir, 'failing');
    mkdirSync(history);
    writeFileSync(
      join(history, 'runs.json'),
      JSON.stringify({
        runs: [
          {
            time: '2026-12-01T10:00:00.000Z',
            duration_ms: 5,
            command: 'moat apply',
            result: 'failed',
            changes: { add: 0, change: 0, destroy: 0 },
            drift: false,
            error: 'apply failed: iptables-restore: line 3 failed',
          },
        ],
      }),
    );
    const args = ['status', '-f', file, '--snapshot', SNAPSHOT];
    const now = moat([...args, '--history-dir', history]);
    expect(now.stdout).toContain('Status:       Failing');
    expect(now.stderr).toBe('');
    const flag = moat([...args, '--state-dir', history]);
    expect(flag.stdout).toBe(now.stdout);
    expect(flag.stderr).toContain(
      '--state-dir is deprecated and will be removed; use --history-dir',
    );
    const env = moat(args, { env: { MOAT_HISTORY_DIR: undefined, MOAT_STATE_DIR: history } });
    expect(env.stdout).toBe(now.stdout);
    expect(env.stderr).toContain(
      'MOAT_STATE_DIR is deprecated and will be removed; use MOAT_HISTORY_DIR',
    );
  });

  test('the old names are not offered in help', () => {
    expect(moat(['plan', '--help']).stdout).not.toMatch(/--state\b/);
    expect(moat(['apply', '--help']).stdout).not.toMatch(/--state-dir\b/);
    expect(moat(['status', '--help']).stdout).toMatch(/--history-dir/);
  });
});

describe('status exit codes', () => {
  test('Failing exits 5, an error (Docker down) exits 1: a monitor can tell them apart', () => {
    const file = policyFile('status.yaml', HOST_ONLY);
    const history = join(dir, 'failing2');
    mkdirSync(history);
    writeFileSync(
      join(history, 'runs.json'),
      JSON.stringify({ runs: [{ time: 't', result: 'failed', drift: false, changes: {} }] }),
    );
    const failing = moat(['status', '-f', file, '--snapshot', SNAPSHOT, '--json'], {
      env: { MOAT_HISTORY_DIR: history },
    });
    expect(failing.status).toBe(ExitCode.failing);
    expect(JSON.parse(failing.stdout)).toMatchObject({ status: 'Failing' });
    const broken = moat([
      'status',
      '-f',
      join(dir, 'missing.yaml'),
      '--snapshot',
      SNAPSHOT,
      '--json',
    ]);
    expect(broken.status).toBe(ExitCode.error);
    expect(JSON.parse(broken.stdout)).toMatchObject({ error: { code: 'policy-unreadable' } });
  });
});

describe('--json stays JSON when the command fails', () => {
  test('validate --json of a missing file', () => {
    const result = moat(['validate', '--json', '-f', join(dir, 'missing.yaml')]);
    expect(result.status).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({
      error: {
        code: 'policy-unreadable',
        message: `cannot read policy file ${join(dir, 'missing.yaml')}: no such file`,
      },
    });
  });

  test('plan --json of a snapshot that is not one', () => {
    const file = policyFile('plan-json.yaml', HOST_ONLY);
    const result = moat(['plan', '--json', '-f', file, '--snapshot', dir]);
    expect(result.status).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'bad-snapshot' } });
  });

  test('show --json of a file that is not a plan', () => {
    const result = moat(['show', '--json', policyFile('not-a-plan.json', '{}')]);
    expect(result.status).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'bad-plan-file' } });
  });
});

describe('-f - reads the policy from standard input', () => {
  test('validate -f -: valid, and errors located in <stdin>', () => {
    expect(moat(['validate', '-f', '-'], { input: HOST_ONLY }).stdout).toBe('<stdin> is valid.\n');
    const bad = moat(['validate', '-f', '-'], {
      input: 'version: 1\ncontainers:\n  web:\n    ingres: []\n',
    });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^<stdin>:4:5: error: /);
  });

  test('plan -f - --out -: the saved plan (with the policy it carries) is all of stdout', () => {
    const result = moat(['plan', '-f', '-', '--snapshot', SNAPSHOT, '--out', '-'], {
      input: HOST_ONLY,
    });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toMatchObject({
      format_version: 2,
      policy_path: '-',
      policy_text: HOST_ONLY,
    });
  });
});

describe('a saved plan and its hint', () => {
  test('plan --out records the absolute policy path; the hint names the plan; show prints it again', () => {
    const file = policyFile('saved.yaml', HOST_ONLY);
    const result = moat(['plan', '-f', file, '--snapshot', SNAPSHOT, '--out', 'plan.json']);
    expect(result.stdout).toContain(
      '\nSaved the plan to plan.json; apply exactly it with: moat apply plan.json\n',
    );
    const doc = JSON.parse(readFileSync(join(dir, 'plan.json'), 'utf8')) as Record<string, unknown>;
    expect(doc).toMatchObject({ policy_path: file, policy_text: HOST_ONLY });
    const shown = moat(['show', 'plan.json']);
    expect(shown.stdout).toBe(result.stdout.slice(0, result.stdout.indexOf('\nSaved the plan')));
  });
});
