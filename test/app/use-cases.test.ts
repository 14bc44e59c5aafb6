/**
 * The use cases behind `moat plan`, `apply`, `status`, `init` and `validate`, wired as the CLI
 * wires them, in milliseconds: the programs moat runs are answered by a scripted runner with
 * outputs recorded from a real kernel (test/fixtures/transcripts/), the Docker API by a socket
 * that serves the bundled snapshot's containers. Faults are injected into the script. The real
 * kernel and dockerd are in the e2e tests.
 *
 * RECORD_TRANSCRIPTS=1 (as root, with iptables-nft and ipset) records the script again: the
 * first session runs against a fresh network namespace loaded with the snapshot's rules.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyCommand, type ApplyOptions } from '../../src/app/apply.js';
import { initCommand } from '../../src/app/init.js';
import { planCommand } from '../../src/app/plan.js';
import { statusCommand } from '../../src/app/status.js';
import { validateCommand } from '../../src/app/validate.js';
import type { ViewKind } from '../../src/app/view.js';
import { ExitCode } from '../../src/core/errors.js';
import type { CommandRunner } from '../../src/core/runner.js';
import { execRunner } from '../../src/host/exec-runner.js';
import { readHistory } from '../../src/state/runs.js';
import { bufferContext } from '../support/app-context.js';
import { serveSnapshot, type FakeDockerApi } from '../support/fake-docker-api.js';
import { NetNs } from '../support/netns.js';
import { recording, ScriptedRunner } from '../support/scripted-runner.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SNAPSHOT = join(ROOT, 'examples/snapshot-docker-20.10');
const TRANSCRIPTS = join(ROOT, 'test/fixtures/transcripts');
const RECORD = process.env.RECORD_TRANSCRIPTS === '1';

const POLICY = `version: 1
ipsets:
  office:
    entries: [198.51.100.0/24]
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host, ipset:office]
`;

let work = '';
let docker: FakeDockerApi;
/** The temp dir differs per run: scripts hold `$WORK` in its place. */
const normalize = (text: string): string => text.split(work).join('$WORK');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'moat-uc-'));
  docker = await serveSnapshot(SNAPSHOT, join(work, 'docker.sock'));
});

afterAll(async () => {
  await docker.close();
  rmSync(work, { recursive: true, force: true });
});

/** A fresh directory for one test: the policy file, the run history and the lock. */
function workspace(name: string, policy = POLICY) {
  const dir = join(work, name);
  mkdirSync(dir);
  const file = join(dir, 'firewall.yaml');
  writeFileSync(file, policy);
  const applyOptions: ApplyOptions = {
    backend: 'auto',
    lockFile: join(dir, 'moat.lock'),
    lockTimeoutMs: 0,
    autoApprove: true,
    quiet: false,
    detailedExitcode: false,
    stateDir: join(dir, 'history'),
  };
  return { dir, file, applyOptions, history: () => readHistory(join(dir, 'history')) };
}

function context(runner: CommandRunner, kind: ViewKind = 'text', extra = {}) {
  return bufferContext({ runner, kind, env: docker.env, ...extra });
}

/**
 * The host of one session: the script of that name replayed, or (RECORD_TRANSCRIPTS=1) a real
 * runner in a fresh namespace holding the snapshot's rules, whose answers become the script.
 * A session is a sequence of use cases; its script answers in the order they asked.
 */
function host(name: string): ScriptedRunner & { finish: () => Promise<void> } {
  const path = join(TRANSCRIPTS, `${name}.json`);
  if (!RECORD)
    return Object.assign(ScriptedRunner.fromFile(path, normalize), {
      finish: () => Promise.resolve(),
    });
  const ns = NetNs.create('uc');
  try {
    for (const [tool, file] of [
      ['iptables-nft-restore', 'iptables-save.txt'],
      ['ip6tables-nft-restore', 'ip6tables-save.txt'],
    ] as const)
      ns.exec(tool, [], readFileSync(join(SNAPSHOT, file), 'utf8'));
  } catch (error) {
    ns.destroy();
    throw error;
  }
  const inner: CommandRunner = (command, args, input) =>
    execRunner('ip', ['netns', 'exec', ns.name, command, ...args], input);
  const recorder = recording(inner, normalize);
  return Object.assign(new ScriptedRunner([], normalize, recorder.runner), {
    finish: async () => {
      try {
        await recorder.save(path);
      } finally {
        ns.destroy();
      }
    },
  });
}

/** Runs one session's use cases against its host; records or replays, and always cleans up. */
async function session(name: string, body: (host: ScriptedRunner) => Promise<void>): Promise<void> {
  const h = host(name);
  try {
    await body(h);
  } finally {
    await h.finish();
  }
}

describe('plan, apply a saved plan, status: one session on a host that starts as the snapshot', () => {
  let h: ReturnType<typeof host>;
  let ws: ReturnType<typeof workspace>;
  let saved = '';

  beforeAll(() => {
    ws = workspace('session');
    saved = join(ws.dir, 'plan.json');
    h = host('plan-apply-status');
  });
  afterAll(() => h.finish());

  test('plan: the change in words, exit 2 with --detailed-exitcode', async () => {
    const { ctx, out, err } = context(h.runner);
    const code = await planCommand(ctx, { file: ws.file, backend: 'auto', detailedExitcode: true });
    expect(err()).toBe('');
    expect(out()).toContain('ghost 2368/tcp: reachable from host, ipset:office');
    expect(out()).toMatch(/Plan: \d+ to add, 0 to change, 0 to destroy\./);
    expect(code).toBe(ExitCode.changes);
  });

  test('plan --out: the saved plan records the policy; the hint is a command that works', async () => {
    const { ctx, out } = context(h.runner);
    await planCommand(ctx, { file: ws.file, backend: 'auto', detailedExitcode: false, out: saved });
    expect(out()).toContain(`apply exactly it with: moat apply ${saved}\n`);
    const doc = JSON.parse(readFileSync(saved, 'utf8')) as Record<string, unknown>;
    expect(doc).toMatchObject({ policy_path: ws.file, policy_text: POLICY });
  });

  test('apply PLAN without -f applies the policy the plan was made from, and records the run', async () => {
    const { ctx, out } = context(h.runner);
    const code = await applyCommand(ctx, { ...ws.applyOptions, planFile: saved });
    expect(out()).toMatch(/Apply complete: \d+ added, 0 changed, 0 destroyed\./);
    expect(code).toBe(ExitCode.ok);
    const runs = (await ws.history()).runs;
    expect(runs.map((r) => [r.result, r.command])).toEqual([['changed', `moat apply ${saved}`]]);
    expect(h.callsOf('ipset').some((c) => c.args[0] === 'restore')).toBe(true);
    expect(h.callsOf('iptables-nft-restore').at(-1)?.args).toEqual(['--noflush', '-w', '5']);
  });

  test('status: Ready once applied (exit 0); plan: no changes', async () => {
    const status = context(h.runner);
    expect(
      await statusCommand(status.ctx, {
        file: ws.file,
        backend: 'auto',
        stateDir: join(ws.dir, 'history'),
      }),
    ).toBe(ExitCode.ok);
    expect(status.out()).toContain('Status:       Ready');
    const plan = context(h.runner);
    expect(
      await planCommand(plan.ctx, { file: ws.file, backend: 'auto', detailedExitcode: true }),
    ).toBe(ExitCode.ok);
    expect(plan.out()).toContain('No changes.');
  });
});

describe('replayed faults and the other ways in', () => {
  test('a restore that fails: exit 1, moat says the host is as it was, the run is recorded failed; status: Failing (5)', async () => {
    const ws = workspace('fault');
    await session('apply-fault', async (scripted) => {
      scripted.answer((c) => c.command === 'ip6tables-nft-restore', {
        exitCode: 2,
        stderr: 'ip6tables-restore: line 4 failed\n',
      });
      const { ctx, err } = context(scripted.runner);
      await expect(applyCommand(ctx, { ...ws.applyOptions, file: ws.file })).rejects.toMatchObject({
        code: 'apply-failed',
        exitCode: ExitCode.error,
      });
      expect(scripted.callsOf('iptables-nft-restore').map((c) => c.args)).toEqual([
        ['--noflush', '--test', '-w', '5'],
      ]);
      expect(err()).toBe('');
      const [run] = (await ws.history()).runs;
      expect(run?.result).toBe('failed');
      expect(run?.error).toContain('ip6tables-restore: line 4 failed');
      expect(run?.error).toContain('the host is as it was');

      const status = context(scripted.runner, 'json');
      const code = await statusCommand(status.ctx, {
        file: ws.file,
        backend: 'auto',
        stateDir: join(ws.dir, 'history'),
      });
      expect(code).toBe(ExitCode.failing);
      expect(code).not.toBe(ExitCode.error);
      expect(JSON.parse(status.out())).toMatchObject({
        status: 'Failing',
        last_run: { result: 'failed' },
      });
    });
  });

  test('a saved plan whose policy changed since: exit 3, nothing written', async () => {
    const ws = workspace('stale');
    await session('stale', async (scripted) => {
      const saved = join(ws.dir, 'plan.json');
      await planCommand(context(scripted.runner).ctx, {
        file: ws.file,
        backend: 'auto',
        detailedExitcode: false,
        out: saved,
      });
      writeFileSync(ws.file, POLICY.replace('198.51.100.0/24', '198.51.100.0/25'));
      await expect(
        applyCommand(context(scripted.runner).ctx, { ...ws.applyOptions, planFile: saved }),
      ).rejects.toMatchObject({ code: 'stale-plan', exitCode: ExitCode.stalePlan });
      expect(scripted.callsOf('iptables-nft-restore')).toEqual([]);
      expect(scripted.callsOf('ipset').filter((c) => c.args[0] === 'restore')).toEqual([]);
    });
  });

  test('plan -f - --out - and apply - : policy and plan through standard input only', async () => {
    const ws = workspace('stdin');
    await session('stdin', async (scripted) => {
      const plan = bufferContext({ runner: scripted.runner, env: docker.env, stdin: POLICY });
      await planCommand(plan.ctx, {
        file: '-',
        backend: 'auto',
        detailedExitcode: false,
        out: '-',
      });
      const doc = JSON.parse(plan.out()) as Record<string, unknown>;
      expect(doc).toMatchObject({ format_version: 2, policy_path: '-', policy_text: POLICY });

      const apply = bufferContext({ runner: scripted.runner, env: docker.env, stdin: plan.out() });
      expect(await applyCommand(apply.ctx, { ...ws.applyOptions, planFile: '-' })).toBe(
        ExitCode.ok,
      );
      expect(apply.out()).toContain('Apply complete');
      expect(scripted.callsOf('git')).toEqual([]); // no file, no git revision to ask for
      expect((await ws.history()).runs[0]?.command).toBe('moat apply -');
    });
  });

  test('apply without a terminal and without --auto-approve: exit 1 (needs-approval), nothing written', async () => {
    const ws = workspace('approval');
    await session('approval', async (scripted) => {
      const { ctx } = context(scripted.runner);
      await expect(
        applyCommand(ctx, { ...ws.applyOptions, file: ws.file, autoApprove: false }),
      ).rejects.toMatchObject({ code: 'needs-approval' });
      const asked = context(scripted.runner, 'text', { interactive: true, answers: ['no'] });
      expect(
        await applyCommand(asked.ctx, { ...ws.applyOptions, file: ws.file, autoApprove: false }),
      ).toBe(ExitCode.error);
      expect(asked.err()).toBe('Apply cancelled; nothing was changed.\n');
      expect(scripted.callsOf('iptables-nft-restore')).toEqual([]);
    });
  });

  test('apply with --log-format json: one JSON line per run on stdout, nothing else', async () => {
    const ws = workspace('jsonlines');
    await session('json-lines', async (scripted) => {
      const { ctx, out, err } = context(scripted.runner, 'json-lines');
      expect(await applyCommand(ctx, { ...ws.applyOptions, file: ws.file })).toBe(ExitCode.ok);
      const lines = out().trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] ?? '')).toMatchObject({
        level: 'info',
        event: 'apply',
        result: 'changed',
      });
      expect(err()).toBe('');
    });
  });

  test('plan reads the host once: each save, ipset save and Docker API request, for plan and its cross-check', async () => {
    const ws = workspace('reads');
    await session('plan-reads', async (scripted) => {
      const asked = docker.requests.length;
      const { ctx, out } = context(scripted.runner);
      await planCommand(ctx, { file: ws.file, backend: 'auto', detailedExitcode: false });
      expect(out()).toContain('ghost 2368/tcp: reachable from host, ipset:office');
      const times = (list: readonly string[]): Record<string, number> => {
        const counted: Record<string, number> = {};
        for (const item of list) counted[item] = (counted[item] ?? 0) + 1;
        return counted;
      };
      const ran = times(scripted.calls.map((c) => [c.command, ...c.args].join(' ')));
      expect(ran).toMatchObject({
        'iptables-nft-save': 1,
        'ip6tables-nft-save': 1,
        'ipset save': 1,
      });
      // The filter tables the plan is made from come out of those saves, not a listing of their own.
      expect(Object.keys(ran).filter((line) => / -t filter -S$/.test(line))).toEqual([]);
      expect(Object.entries(ran).filter(([, n]) => n > 1)).toEqual([]);
      const requests = times(docker.requests.slice(asked).map((path) => path.split('?')[0] ?? ''));
      expect(Object.keys(requests).some((path) => path.endsWith('/containers/json'))).toBe(true);
      expect(Object.entries(requests).filter(([, n]) => n > 1)).toEqual([]);
    });
  });

  test('plan on an iptables-nft host whose Docker uses iptables: nft lists its chains, never the whole ruleset', async () => {
    const ws = workspace('nft-reads');
    await session('plan-nft-reads', async (scripted) => {
      const { ctx, out } = context(scripted.runner, 'json');
      await planCommand(ctx, { file: ws.file, backend: 'auto', detailedExitcode: false });
      const doc = JSON.parse(out()) as { docker?: { firewall_backend?: string } };
      expect(doc.docker?.firewall_backend).toBe('iptables');
      // iptables-nft holds the host's rules, so nft lists them too, as the tables ip filter, ….
      expect(scripted.callsOf('iptables-nft-save')).toHaveLength(1);
      // Every rule of every table would be seconds at 50,000 rules; the chains take milliseconds
      // and hold what plan and its cross-check use (the tables; base chains and their policies).
      expect(scripted.callsOf('nft').map((c) => c.args.join(' '))).toEqual(['-j list chains']);
    });
  });

  test('plan in the JSON view: the plan document on stdout', async () => {
    const ws = workspace('json');
    await session('plan-json', async (scripted) => {
      const { ctx, out } = context(scripted.runner, 'json');
      await planCommand(ctx, { file: ws.file, backend: 'auto', detailedExitcode: false });
      expect(JSON.parse(out())).toMatchObject({ format_version: 2, summary: { change: 0 } });
    });
  });
});

describe('failing in the JSON view still prints JSON', () => {
  test('status --json with Docker down: an error document, exit 1 (not Failing)', async () => {
    const ws = workspace('docker-down');
    await session('docker-down', async (scripted) => {
      const view = bufferContext({
        runner: scripted.runner,
        kind: 'json',
        env: { DOCKER_HOST: `unix://${join(ws.dir, 'no-docker.sock')}` },
      });
      const run = statusCommand(view.ctx, {
        file: ws.file,
        backend: 'auto',
        stateDir: join(ws.dir, 'history'),
      });
      const code = await run.catch((error: unknown) =>
        view.ctx.view.failure(error, { debug: false }),
      );
      expect(code).toBe(ExitCode.error);
      expect(JSON.parse(view.out())).toEqual({
        error: { code: 'docker-unreachable', message: expect.stringContaining('no-docker.sock') },
      });
    });
  });

  test('validate --json of a missing file: an error document, exit 1', async () => {
    const view = bufferContext({ kind: 'json' });
    const code = await validateCommand(view.ctx, { file: join(work, 'missing.yaml') }).catch(
      (error: unknown) => view.ctx.view.failure(error, { debug: false }),
    );
    expect(code).toBe(ExitCode.error);
    expect(JSON.parse(view.out())).toMatchObject({ error: { code: 'policy-unreadable' } });
  });

  test('plan --json of an invalid policy: the error document carries the diagnostics', async () => {
    const ws = workspace(
      'invalid',
      'version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ports: [2368]\n        from: [hots]\n',
    );
    const view = bufferContext({ kind: 'json', env: docker.env });
    const code = await planCommand(view.ctx, {
      file: ws.file,
      backend: 'auto',
      detailedExitcode: false,
    }).catch((error: unknown) => view.ctx.view.failure(error, { debug: false }));
    expect(code).toBe(ExitCode.error);
    const doc = JSON.parse(view.out()) as {
      error: { code: string; diagnostics: { line: number; column: number }[] };
    };
    expect(doc.error.code).toBe('invalid-policy');
    expect(doc.error.diagnostics[0]).toMatchObject({ line: 6, column: 16 });
  });
});

describe('working from a snapshot', () => {
  test('init --snapshot writes a policy that plans with no changes against it; status --snapshot: Ready', async () => {
    const ws = workspace('init');
    const init = bufferContext();
    await initCommand(init.ctx, { snapshot: SNAPSHOT, force: false });
    writeFileSync(ws.file, init.out());
    const plan = bufferContext();
    expect(
      await planCommand(plan.ctx, {
        file: ws.file,
        snapshot: SNAPSHOT,
        backend: 'auto',
        detailedExitcode: true,
      }),
    ).toBe(ExitCode.ok);
    const status = bufferContext();
    expect(
      await statusCommand(status.ctx, {
        file: ws.file,
        snapshot: SNAPSHOT,
        backend: 'auto',
        stateDir: join(ws.dir, 'history'),
      }),
    ).toBe(ExitCode.ok);
  });

  test('status --snapshot of a policy the snapshot does not satisfy: Drifted (2)', async () => {
    const ws = workspace('drifted');
    const status = bufferContext();
    expect(
      await statusCommand(status.ctx, {
        file: ws.file,
        snapshot: SNAPSHOT,
        backend: 'auto',
        stateDir: join(ws.dir, 'history'),
      }),
    ).toBe(ExitCode.changes);
    expect(status.out()).toMatch(/Now: {10}\d+ steps pending/);
  });
});
