/**
 * examples/ci: both pipelines parse and have the jobs the README describes; their pull-request
 * plan scripts run for real (bash, the built CLI as `moat`) against the bundled snapshot of a
 * Docker host, and handle the plan's exit codes: 0 and 2 pass, anything else fails the job.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { inventoryFromApi } from '../../src/docker/normalize.js';
import { initialPolicy } from '../../src/init/generate.js';
import { CLI, assertBuilt } from '../support/moat-cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const SNAPSHOT = join(ROOT, 'examples/snapshot-docker-20.10');

interface GhStep {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  env?: Record<string, string>;
  with?: Record<string, unknown>;
}
interface GhJob {
  if?: string;
  'runs-on': unknown;
  needs?: string;
  environment?: string;
  steps: GhStep[];
}
interface GhWorkflow {
  on: Record<string, unknown>;
  env: Record<string, string>;
  jobs: Record<string, GhJob>;
}
interface GlJob {
  stage?: string;
  extends?: string;
  tags?: string[];
  rules?: { if: string; when?: string }[];
  needs?: string[];
  environment?: string;
  script?: string[];
  artifacts?: { paths: string[]; expose_as?: string };
}

const github = parse(read('examples/ci/github-actions.yml')) as GhWorkflow;
const gitlab = parse(read('examples/ci/gitlab-ci.yml')) as Record<string, GlJob>;

function ghJob(name: string): GhJob {
  const job = github.jobs[name];
  if (job === undefined) throw new Error(`no job ${name}`);
  return job;
}
function ghStep(job: string, name: string): GhStep {
  const step = ghJob(job).steps.find((s) => s.name === name);
  if (step === undefined) throw new Error(`no step ${name} in ${job}`);
  return step;
}
function glJob(name: string): GlJob {
  const job = gitlab[name];
  if (job === undefined) throw new Error(`no job ${name}`);
  return job;
}

describe('examples/ci/github-actions.yml', () => {
  test('runs on pull requests and on pushes to main', () => {
    expect(Object.keys(github.on).sort()).toEqual(['pull_request', 'push']);
    expect(github.on.push).toMatchObject({ branches: ['main'] });
  });

  test('pull request: validate, plan (snapshot by default), publish the plan', () => {
    const job = ghJob('plan-pr');
    expect(job.if).toBe("github.event_name == 'pull_request'");
    expect(ghStep('plan-pr', 'Validate').run).toBe('moat validate --file "$MOAT_FILE"');
    const plan = ghStep('plan-pr', 'Plan').run ?? '';
    expect(plan).toContain('moat plan --snapshot "$MOAT_SNAPSHOT"');
    expect(plan).toContain('--out plan.json --detailed-exitcode');
    expect(plan).toContain('$GITHUB_STEP_SUMMARY');
    expect(ghStep('plan-pr', 'Keep the plan').uses).toMatch(/^actions\/upload-artifact@/);
    expect(ghStep('plan-pr', 'Comment on the pull request').run).toContain('gh pr comment');
  });

  test('merge: plan on the host, then apply exactly that plan after approval', () => {
    const plan = ghJob('plan-main');
    expect(plan['runs-on']).toEqual(['self-hosted', 'docker-host-1']);
    expect(ghStep('plan-main', 'Plan on the host').run).toContain(
      'moat plan --file "$MOAT_FILE" --out plan.json',
    );
    const apply = ghJob('apply');
    expect(apply.needs).toBe('plan-main');
    expect(apply['runs-on']).toEqual(['self-hosted', 'docker-host-1']);
    expect(apply.environment).toBe('production');
    expect(ghStep('apply', 'Apply the reviewed plan').run).toContain(
      'moat apply plan.json --file "$MOAT_FILE" --auto-approve',
    );
  });
});

describe('examples/ci/gitlab-ci.yml', () => {
  test('merge request: validate, plan against the snapshot, expose the plan', () => {
    expect(glJob('validate').script).toEqual(['moat validate --file "$MOAT_FILE"']);
    const plan = glJob('plan:mr');
    expect(plan.rules?.[0]?.if).toContain('merge_request_event');
    expect(plan.script?.join('\n')).toContain(
      'moat plan --file "$MOAT_FILE" --snapshot "$MOAT_SNAPSHOT"',
    );
    expect(plan.artifacts).toMatchObject({
      expose_as: 'moat plan',
      paths: ['plan.txt', 'plan.json'],
    });
  });

  test('default branch: plan on the host, apply the saved plan by hand', () => {
    expect(glJob('.on-host').tags).toEqual(['docker-host-1']);
    expect(glJob('plan:host').extends).toBe('.on-host');
    const apply = glJob('apply');
    expect(apply.extends).toBe('.on-host');
    expect(apply.needs).toEqual(['plan:host']);
    expect(apply.rules).toEqual([
      { if: '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH', when: 'manual' },
    ]);
    expect(apply.script?.join('\n')).toContain(
      'moat apply plan.json --file "$MOAT_FILE" --auto-approve',
    );
  });
});

describe('examples/ci: the pull-request plan scripts, run against a snapshot', () => {
  let dir = '';
  const bin = (): string => join(dir, 'bin');

  beforeAll(() => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'moat-ci-'));
    mkdirSync(bin());
    writeFileSync(join(bin(), 'moat'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`);
    chmodSync(join(bin(), 'moat'), 0o755);
  });

  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  function workspace(policy: string): { cwd: string; env: Record<string, string> } {
    const cwd = mkdtempSync(join(dir, 'ws-'));
    writeFileSync(join(cwd, 'firewall.yaml'), policy);
    writeFileSync(join(cwd, 'summary.md'), '');
    writeFileSync(join(cwd, 'output'), '');
    return {
      cwd,
      env: {
        PATH: `${bin()}:${process.env.PATH ?? ''}`,
        HOME: cwd,
        NO_COLOR: '1',
        MOAT_FILE: 'firewall.yaml',
        MOAT_SNAPSHOT: SNAPSHOT,
        MOAT_HISTORY_DIR: join(cwd, 'state'),
        MOAT_LOCK_FILE: join(cwd, 'moat.lock'),
        GITHUB_OUTPUT: join(cwd, 'output'),
        GITHUB_STEP_SUMMARY: join(cwd, 'summary.md'),
      },
    };
  }

  /** As GitHub runs a `run:` step (bash -eo pipefail) or GitLab a job's script lines. */
  function runScript(script: string, ws: { cwd: string; env: Record<string, string> }) {
    const file = join(ws.cwd, 'step.sh');
    writeFileSync(file, script);
    const result = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', file], {
      cwd: ws.cwd,
      env: ws.env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    const out = (name: string): string =>
      existsSync(join(ws.cwd, name)) ? readFileSync(join(ws.cwd, name), 'utf8') : '';
    return {
      status: result.status,
      log: `${result.stdout}${result.stderr}`,
      output: out('output'),
      summary: out('summary.md'),
      note: out('note.md'),
      plan: out('plan.json'),
    };
  }

  const githubPlan = (): string => ghStep('plan-pr', 'Plan').run ?? '';
  const gitlabPlan = (): string => (glJob('plan:mr').script ?? []).join('\n');
  const changingPolicy = (): string => read('examples/host-only-port/firewall.yaml');
  /** `moat init` on the snapshot's containers: nothing to change. */
  const matchingPolicy = (): string =>
    initialPolicy(
      inventoryFromApi(
        JSON.parse(readFileSync(join(SNAPSHOT, 'docker-containers.json'), 'utf8')),
        JSON.parse(readFileSync(join(SNAPSHOT, 'docker-networks.json'), 'utf8')),
      ),
    );

  test('GitHub: changes → the job passes, says changes=true, summary and plan.json', () => {
    const ws = workspace(changingPolicy());
    const r = runScript(githubPlan(), { ...ws, env: { ...ws.env, MODE: 'snapshot' } });
    expect(r.log).toContain('Plan: ');
    expect(r.status).toBe(0);
    expect(r.output).toBe('changes=true\n');
    expect(r.summary).toContain(`### moat plan against the snapshot ${SNAPSHOT}`);
    expect(r.summary).toMatch(/ghost 2368\/tcp: reachable from host only \(was: anyone\)/);
    expect(r.summary).toMatch(/Plan: \d+ to add/);
    expect((JSON.parse(r.plan) as { format_version?: number }).format_version).toBe(1);
  });

  test('GitHub: the policy `moat init` writes for the snapshot → no changes', () => {
    const ws = workspace(matchingPolicy());
    const r = runScript(githubPlan(), { ...ws, env: { ...ws.env, MODE: 'snapshot' } });
    expect(r.status).toBe(0);
    expect(r.output).toBe('changes=false\n');
    expect(r.summary).toContain('No changes.');
  });

  test('GitHub: an invalid policy fails the job with an annotation', () => {
    const ws = workspace(
      'version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ports: [2368]\n        from: [hots]\n',
    );
    const r = runScript(githubPlan(), { ...ws, env: { ...ws.env, MODE: 'snapshot' } });
    expect(r.status).toBe(1);
    expect(r.log).toContain('::error::moat plan failed (exit 1)');
    expect(r.log).toContain('hots');
    expect(r.output).toBe('');
  });

  test('GitLab: changes → the job passes and writes the note', () => {
    const r = runScript(gitlabPlan(), workspace(changingPolicy()));
    expect(r.status).toBe(0);
    expect(r.note).toContain(`### moat plan against the snapshot ${SNAPSHOT}`);
    expect(r.note).toMatch(/Plan: \d+ to add/);
    expect(r.plan).not.toBe('');
  });

  test('GitLab: no changes → passes; an invalid policy → fails', () => {
    expect(runScript(gitlabPlan(), workspace(matchingPolicy())).status).toBe(0);
    const bad = runScript(gitlabPlan(), workspace('version: 2\n'));
    expect(bad.status).toBe(1);
    expect(bad.note).toBe('');
  });
});
