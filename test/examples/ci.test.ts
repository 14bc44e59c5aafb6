/**
 * examples/ci: both pipelines parse and have the jobs the README describes; their pull-request
 * plan scripts run for real (bash, the built CLI as `moat`) against the bundled snapshot of a
 * Docker host, and handle the plan's exit codes: 0 and 2 pass, anything else fails the job.
 * The sudoers example grants exactly the commands the host jobs run, none naming a path; the
 * host jobs run for real through a stand-in sudo that allows only those command lines, against
 * a namespace holding the snapshot's rules.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
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
import { serveSnapshot, type FakeDockerApi } from '../support/fake-docker-api.js';
import { CLI, assertBuilt } from '../support/moat-cli.js';
import { NetNs } from '../support/netns.js';
import { describeWith } from '../support/prereq.js';

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
    expect(plan).toContain('--file - --out - --detailed-exitcode < "$MOAT_FILE" > plan.json');
    expect(plan).toContain('$GITHUB_STEP_SUMMARY');
    expect(ghStep('plan-pr', 'Keep the plan').uses).toMatch(/^actions\/upload-artifact@/);
    expect(ghStep('plan-pr', 'Comment on the pull request').run).toContain('gh pr comment');
  });

  test('merge: plan on the host, then apply exactly that plan after approval', () => {
    const plan = ghJob('plan-main');
    expect(plan['runs-on']).toEqual(['self-hosted', 'docker-host-1']);
    expect(ghStep('plan-main', 'Plan on the host').run).toContain(
      'sudo -n /usr/local/bin/moat plan --file - --out - --detailed-exitcode < "$MOAT_FILE" > plan.json',
    );
    const apply = ghJob('apply');
    expect(apply.needs).toBe('plan-main');
    expect(apply['runs-on']).toEqual(['self-hosted', 'docker-host-1']);
    expect(apply.environment).toBe('production');
    expect(ghStep('apply', 'Apply the reviewed plan').run).toContain(
      'sudo -n /usr/local/bin/moat apply - --auto-approve --lock-timeout 60s < plan.json',
    );
  });
});

describe('examples/ci/gitlab-ci.yml', () => {
  test('merge request: validate, plan against the snapshot, expose the plan', () => {
    expect(glJob('validate').script).toEqual(['moat validate --file "$MOAT_FILE"']);
    const plan = glJob('plan:mr');
    expect(plan.rules?.[0]?.if).toContain('merge_request_event');
    expect(plan.script?.join('\n')).toContain(
      'moat plan --snapshot "$MOAT_SNAPSHOT" --file - --out - --detailed-exitcode < "$MOAT_FILE"',
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
      'sudo -n /usr/local/bin/moat apply - --auto-approve --lock-timeout 60s < plan.json',
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
    expect((JSON.parse(r.plan) as { format_version?: number }).format_version).toBe(2);
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

/** `NAME = command` aliases and what each runner may run, from examples/ci/sudoers. */
function sudoersRules(): { aliases: Map<string, string>; granted: Map<string, string[]> } {
  const aliases = new Map<string, string>();
  const granted = new Map<string, string[]>();
  for (const line of read('examples/ci/sudoers').split('\n')) {
    const alias = /^Cmnd_Alias (\w+) = (.+)$/.exec(line);
    if (alias !== null) aliases.set(alias[1] ?? '', (alias[2] ?? '').trim());
    const grant = /^([\w-]+) ALL=\(root\) NOPASSWD: (.+)$/.exec(line);
    if (grant !== null)
      granted.set(
        grant[1] ?? '',
        (grant[2] ?? '').split(',').map((name) => aliases.get(name.trim()) ?? `?${name}`),
      );
  }
  return { aliases, granted };
}

/** `sudo -n …` command lines in a script, up to the first redirection or operator. */
function sudoCommands(script: string): string[] {
  return [...script.matchAll(/^\s*(?:- )?sudo -n ([^<>|;&\n]+)/gm)].map((m) => (m[1] ?? '').trim());
}

const hostScripts = (): string[] => [
  ghStep('plan-main', 'Plan on the host').run ?? '',
  ghStep('apply', 'Apply the reviewed plan').run ?? '',
  ...['plan:mr:host', 'plan:host', 'apply'].map((job) => (glJob(job).script ?? []).join('\n')),
];

describe('examples/ci/sudoers: the runner may run exactly what the pipelines need as root', () => {
  const { aliases, granted } = sudoersRules();

  test('each runner is granted exactly the plan and the apply command', () => {
    expect([...aliases.values()]).toEqual([
      '/usr/local/bin/moat plan --file - --out - --detailed-exitcode',
      '/usr/local/bin/moat apply - --auto-approve --lock-timeout 60s',
    ]);
    expect(granted.get('github-runner')).toEqual([...aliases.values()]);
    expect(granted.get('gitlab-runner')).toEqual([...aliases.values()]);
  });

  test('no granted command names a path or a wildcard: input and output are stdin and stdout', () => {
    for (const command of aliases.values()) {
      const words = command.split(' ').slice(1);
      expect(words.filter((w) => /[*?[\]\\]/.test(w))).toEqual([]);
      // Every value moat would read or write as a path is `-`.
      for (const [i, word] of words.entries())
        if (['--file', '-f', '--out'].includes(word)) expect(words[i + 1]).toBe('-');
      expect(
        words.filter((w) =>
          /^--(metrics-file|history-dir|state-dir|lock-file|snapshot|state)\b/.test(w),
        ),
      ).toEqual([]);
    }
  });

  test('every sudo in the pipelines runs a granted command, word for word', () => {
    const used = hostScripts().flatMap(sudoCommands);
    expect(used.length).toBeGreaterThanOrEqual(5);
    for (const command of used) expect([...aliases.values()]).toContain(command);
  });
});

describeWith(['visudo'], 'examples/ci/sudoers: sudo accepts it', () => {
  test('visudo -c parses the file', () => {
    const result = spawnSync('visudo', ['-cf', join(ROOT, 'examples/ci/sudoers')], {
      encoding: 'utf8',
    });
    expect(`${result.stdout}${result.stderr}`).toContain('parsed OK');
    expect(result.status).toBe(0);
  });
});

describeWith(
  ['root', 'ip', 'iptables', 'ipset'],
  'examples/ci: the host jobs, run for real through a sudo that allows only the sudoers commands',
  () => {
    let dir = '';
    const namespaces: NetNs[] = [];
    let docker: FakeDockerApi;
    const { granted } = sudoersRules();

    beforeAll(async () => {
      assertBuilt();
      dir = mkdtempSync(join(tmpdir(), 'moat-ci-host-'));
      // The host's containers, from a socket; its rules, per test, in a namespace.
      docker = await serveSnapshot(SNAPSHOT, join(dir, 'docker.sock'));
    });

    afterAll(async () => {
      await docker.close();
      for (const ns of namespaces) ns.destroy();
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    /**
     * A workspace whose `sudo` stands in for the real one with examples/ci/sudoers installed:
     * it runs only a granted command line, exactly, as root, in the host's namespace, with the
     * environment reset (plus what keeps the test off this machine's /var/lib and /run).
     */
    function hostWorkspace(runnerUser: string) {
      const ns = NetNs.create('ci');
      namespaces.push(ns);
      ns.exec(
        'iptables-nft-restore',
        [],
        readFileSync(join(SNAPSHOT, 'iptables-save.txt'), 'utf8'),
      );
      const cwd = mkdtempSync(join(dir, 'ws-'));
      mkdirSync(join(cwd, 'bin'));
      writeFileSync(join(cwd, 'allowed'), (granted.get(runnerUser) ?? []).join('\n') + '\n');
      const sudo = `#!/bin/bash
[ "$1" = -n ] || { echo "sudo: the pipelines must not prompt" >&2; exit 1; }
shift
echo "$*" >> '${cwd}/sudo.log'
grep -qxF -- "$*" '${cwd}/allowed' || { echo "sudo: a password is required" >&2; exit 1; }
shift
exec env -i PATH="$PATH" NO_COLOR=1 DOCKER_HOST='${docker.env.DOCKER_HOST}' \\
  MOAT_HISTORY_DIR='${dir}/history' MOAT_LOCK_FILE='${dir}/moat.lock' \\
  ip netns exec '${ns.name}' '${process.execPath}' '${CLI}' "$@"
`;
      writeFileSync(join(cwd, 'bin', 'sudo'), sudo);
      writeFileSync(
        join(cwd, 'bin', 'moat'),
        `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`,
      );
      chmodSync(join(cwd, 'bin', 'sudo'), 0o755);
      chmodSync(join(cwd, 'bin', 'moat'), 0o755);
      writeFileSync(join(cwd, 'firewall.yaml'), read('examples/host-only-port/firewall.yaml'));
      for (const name of ['output', 'summary.md']) writeFileSync(join(cwd, name), '');
      const env = {
        PATH: `${join(cwd, 'bin')}:${process.env.PATH ?? ''}`,
        HOME: cwd,
        NO_COLOR: '1',
        MOAT_FILE: 'firewall.yaml',
        GITHUB_OUTPUT: join(cwd, 'output'),
        GITHUB_STEP_SUMMARY: join(cwd, 'summary.md'),
        MODE: 'host',
      };
      // Asynchronous: the Docker API answering the CLI is served by this very process.
      const run = (script: string): Promise<{ status: number | null; log: string }> => {
        writeFileSync(join(cwd, 'step.sh'), script);
        const child = spawn('bash', ['--noprofile', '--norc', '-eo', 'pipefail', 'step.sh'], {
          cwd,
          env,
          timeout: 60_000,
        });
        const log: Buffer[] = [];
        child.stdout.on('data', (chunk: Buffer) => log.push(chunk));
        child.stderr.on('data', (chunk: Buffer) => log.push(chunk));
        return new Promise((resolve, reject) => {
          child.on('error', reject);
          child.on('close', (status) => {
            resolve({ status, log: Buffer.concat(log).toString('utf8') });
          });
        });
      };
      const file = (name: string): string => readFileSync(join(cwd, name), 'utf8');
      const moatChains = (): string =>
        ns
          .exec('iptables-nft', ['-S'])
          .split('\n')
          .filter((l) => l.startsWith('-N MOAT-'))
          .join('\n');
      return { cwd, run, file, moatChains };
    }

    test('GitHub: plan on the host, apply the plan after approval; a second apply of it is stale (exit 3)', async () => {
      const ws = hostWorkspace('github-runner');
      const pr = await ws.run(ghStep('plan-pr', 'Plan').run ?? '');
      expect(pr.log).toContain('Plan: ');
      expect(pr.status).toBe(0);

      const plan = await ws.run(ghStep('plan-main', 'Plan on the host').run ?? '');
      expect(plan.status).toBe(0);
      expect(ws.file('output')).toContain('changes=true');
      expect(ws.file('summary.md')).toMatch(
        /ghost 2368\/tcp: reachable from host only \(was: anyone\)/,
      );
      expect(JSON.parse(ws.file('plan.json'))).toMatchObject({ policy_path: '-' });
      expect(ws.moatChains()).toBe('');

      const apply = await ws.run(ghStep('apply', 'Apply the reviewed plan').run ?? '');
      expect(apply.log).toContain('Apply complete');
      expect(apply.status).toBe(0);
      expect(ws.moatChains()).toContain('-N MOAT-FORWARD');

      const again = await ws.run(ghStep('apply', 'Apply the reviewed plan').run ?? '');
      expect(again.status).toBe(3);
      expect(again.log).toContain('::error::the host or the policy changed since the plan');
      expect(ws.file('sudo.log').trim().split('\n')).toHaveLength(4);
    });

    test('GitLab: plan:host, then the manual apply; the old unrestricted command line is refused', async () => {
      const ws = hostWorkspace('gitlab-runner');
      const plan = await ws.run((glJob('plan:host').script ?? []).join('\n'));
      expect(plan.status).toBe(0);
      expect(ws.file('plan.txt')).toMatch(/Plan: \d+ to add/);
      const apply = await ws.run((glJob('apply').script ?? []).join('\n'));
      expect(apply.status).toBe(0);
      expect(ws.moatChains()).toContain('-N MOAT-FORWARD');

      const old = await ws.run(
        'sudo -n /usr/local/bin/moat plan --file firewall.yaml --out /etc/moat-test\n',
      );
      expect(old.status).toBe(1);
      expect(old.log).toContain('a password is required');
    });
  },
);
