/**
 * `moat explain` and `moat test` as a user runs them, on the bundled snapshot of a Docker 28.5.2
 * host (examples/snapshot-docker-28.5.2: ghost, api and web; moat's host-only policy for ghost
 * applied), and examples/ci's test step run for real: a pull request that would open a port
 * the assertions keep closed fails.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
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
import { CLI, assertBuilt } from '../support/moat-cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SNAPSHOT = join(ROOT, 'examples/snapshot-docker-28.5.2');
const POLICY = join(ROOT, 'examples/ci/firewall.yaml');
const TESTS = join(ROOT, 'examples/ci/firewall.tests.yaml');

function moat(
  args: readonly string[],
  cwd = ROOT,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const explainArgs = (from: string, to: string, ...more: string[]) => [
  'explain',
  '--snapshot',
  SNAPSHOT,
  '-f',
  'examples/ci/firewall.yaml',
  '--from',
  from,
  '--to',
  to,
  ...more,
];

beforeAll(() => {
  assertBuilt();
});

describe('moat explain on a snapshot', () => {
  test('an outside client is refused: the verdict, the trail, and the policy line', () => {
    const r = moat(explainArgs('198.51.100.7', 'ghost:2368/tcp'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ghost publishes 2368/tcp on 0.0.0.0 and :: (container port 2368)');
    expect(r.stdout).toContain('IPv4: blocked');
    expect(r.stdout).toContain(
      'nat DOCKER #3: ! -i docker0 -p tcp -m tcp --dport 2368 -j DNAT --to-destination 172.17.0.2:2368  → DNAT to 172.17.0.2:2368',
    );
    expect(r.stdout).toMatch(
      /filter MOAT-INGRESS #\d+: .*--ctorigdstport 2368 -j DROP {2}→ DROP {2}\[examples\/ci\/firewall\.yaml:9:9 ghost ingress rule 1\]/,
    );
  });

  test('over IPv6 the same port is reached through docker-proxy, and refused in INPUT', () => {
    const r = moat(explainArgs('2001:db8:100::7', 'ghost:2368/tcp'));
    expect(r.stdout).toContain('IPv6: blocked');
    expect(r.stdout).toMatch(
      /filter MOAT-INPUT #\d+: .*--dport 2368 -j DROP {2}→ DROP {2}\[examples\/ci\/firewall\.yaml:9:9 ghost ingress rule 1\]/,
    );
    expect(moat(explainArgs('host', 'ghost:2368/tcp')).stdout).toMatch(
      /IPv4: reachable[\s\S]*IPv6: reachable/,
    );
  });

  test('--after-plan evaluates the ruleset the pending plan leaves', () => {
    const now = moat(explainArgs('container:api', '192.0.2.10:443/tcp'));
    expect(now.stdout).toContain('IPv4: reachable');
    const after = moat(explainArgs('container:api', '192.0.2.10:443/tcp', '--after-plan'));
    expect(after.stdout).toContain('evaluated on (the ruleset after the pending plan)');
    expect(after.stdout).toContain('IPv4: blocked');
    expect(after.stdout).toMatch(
      /MOAT-EGR-\w+ #1: .*-d 192\.0\.2\.0\/24 -j DROP {2}→ DROP {2}\[examples\/ci\/firewall\.yaml:14:11 api egress deny rule 1\]/,
    );
  });

  test('--json: a versioned document with the trail and the policy positions', () => {
    const r = moat(explainArgs('198.51.100.7', 'ghost:2368/tcp', '--json'));
    const doc = JSON.parse(r.stdout) as {
      format_version: number;
      answers: {
        family: string;
        verdict: string;
        probes: { verdict: string; trail: { kind: string; effect?: string; policy?: unknown }[] }[];
      }[];
    };
    expect(doc.format_version).toBe(1);
    expect(doc.answers.map((a) => [a.family, a.verdict])).toEqual([['ipv4', 'blocked']]);
    const drop = doc.answers[0]?.probes[0]?.trail.find((s) => s.effect === 'DROP');
    expect(drop).toMatchObject({
      kind: 'rule',
      table: 'filter',
      policy: {
        file: 'examples/ci/firewall.yaml',
        line: 9,
        column: 9,
        what: 'ghost ingress rule 1',
      },
    });
  });

  test('a bad endpoint is a clear error', () => {
    const bad = moat(explainArgs('198.51.100.7', 'ghost'));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toBe(
      'moat: "ghost" is not a destination: use CONTAINER:PORT/PROTO, ADDRESS:PORT/PROTO or [IPV6]:PORT/PROTO\n',
    );
    const missing = moat(explainArgs('198.51.100.7', 'nosuch:80/tcp'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe(
      'moat: no running container named "nosuch" (running: api, ghost, web)\n',
    );
  });
});

describe('moat test on a snapshot', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moat-test-cli-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function workspace(policy: string, tests = readFileSync(TESTS, 'utf8')): string {
    const cwd = mkdtempSync(join(dir, 'ws-'));
    writeFileSync(join(cwd, 'firewall.yaml'), policy);
    writeFileSync(join(cwd, 'firewall.tests.yaml'), tests);
    return cwd;
  }

  test('the example passes', () => {
    const r = moat(['test', '-f', POLICY, '--snapshot', SNAPSHOT]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /^ok {4}.*firewall\.tests\.yaml:6:5 {2}the blog's admin port stays private: anyone → ghost:2368\/tcp is blocked$/m,
    );
    expect(r.stdout).toContain('4 passed, 0 failed.');
  });

  test('a pull request that opens the port fails, naming the assertion and why', () => {
    const opened = readFileSync(POLICY, 'utf8').replace('from: [host]', 'from: [host, any]');
    const cwd = workspace(opened);
    const r = moat(['test', '--snapshot', SNAPSHOT], cwd);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(
      /^FAIL {2}firewall\.tests\.yaml:6:5 {2}the blog's admin port stays private: anyone → ghost:2368\/tcp is blocked$/m,
    );
    expect(r.stdout).toMatch(
      /IPv4: reachable: from anyone \(e\.g\. [\d.]+, which no rule names\) \(on vd0\) to the host 198\.51\.100\.1:2368\/tcp: delivered to container ghost at 172\.17\.0\.2:2368/,
    );
    expect(r.stdout).toContain('3 passed, 1 failed.');
    // --current checks the host as it is: still closed there.
    expect(moat(['test', '--snapshot', SNAPSHOT, '--current'], cwd).stdout).toMatch(
      /^ok {4}firewall\.tests\.yaml:6:5/m,
    );
  });

  test('mistakes in the tests file are located; a missing file is named', () => {
    const cwd = workspace(
      readFileSync(POLICY, 'utf8'),
      'version: 1\ntests:\n  - from: anyone\n    to: ghost:2368\n    expect: closed\n',
    );
    const r = moat(['test', '--snapshot', SNAPSHOT], cwd);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('firewall.tests.yaml:5:13: error: `expect` is reachable or blocked');
    expect(r.stderr).toContain('moat: firewall.tests.yaml is not valid; no test was run');
    const none = moat(['test', '--snapshot', SNAPSHOT, '--tests', 'nope.yaml'], cwd);
    expect(none.stderr).toMatch(/^moat: cannot read the tests file nope\.yaml/);
  });

  test('--json', () => {
    const r = moat(['test', '-f', POLICY, '--snapshot', SNAPSHOT, '--json']);
    const doc = JSON.parse(r.stdout) as {
      passed: number;
      failed: number;
      tests: { passed: boolean; line: number }[];
    };
    expect([doc.passed, doc.failed]).toEqual([4, 0]);
    expect(doc.tests.map((t) => t.line)).toEqual([6, 10, 14, 19]);
  });
});

describe('examples/ci: the reachability step, run for real', () => {
  interface Step {
    name?: string;
    run?: string;
  }
  const github = parse(readFileSync(join(ROOT, 'examples/ci/github-actions.yml'), 'utf8')) as {
    jobs: Record<string, { steps: Step[] }>;
  };
  const gitlab = parse(readFileSync(join(ROOT, 'examples/ci/gitlab-ci.yml'), 'utf8')) as Record<
    string,
    { script?: string[] }
  >;
  let dir = '';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moat-ci-test-'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(
      join(dir, 'bin', 'moat'),
      `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`,
    );
    chmodSync(join(dir, 'bin', 'moat'), 0o755);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function run(
    script: string,
    policy: string,
  ): { status: number | null; log: string; summary: string } {
    const cwd = mkdtempSync(join(dir, 'ws-'));
    writeFileSync(join(cwd, 'firewall.yaml'), policy);
    copyFileSync(TESTS, join(cwd, 'firewall.tests.yaml'));
    writeFileSync(join(cwd, 'summary.md'), '');
    writeFileSync(join(cwd, 'step.sh'), script);
    const r = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', 'step.sh'], {
      cwd,
      encoding: 'utf8',
      timeout: 30_000,
      env: {
        PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}`,
        HOME: cwd,
        NO_COLOR: '1',
        MODE: 'snapshot',
        MOAT_FILE: 'firewall.yaml',
        MOAT_SNAPSHOT: SNAPSHOT,
        GITHUB_STEP_SUMMARY: join(cwd, 'summary.md'),
      },
    });
    return {
      status: r.status,
      log: `${r.stdout}${r.stderr}`,
      summary: readFileSync(join(cwd, 'summary.md'), 'utf8'),
    };
  }

  const githubStep = (): string =>
    github.jobs['plan-pr']?.steps.find((s) => s.name === 'Test reachability')?.run ?? '';
  const gitlabJob = (): string => (gitlab['test:mr']?.script ?? []).join('\n');
  const policy = (): string => readFileSync(POLICY, 'utf8');
  const opened = (): string => policy().replace('from: [host]', 'from: [host, any]');

  test('GitHub: passes with the policy, fails the pull request that opens the port', () => {
    const ok = run(githubStep(), policy());
    expect(ok.status).toBe(0);
    expect(ok.summary).toContain('4 passed, 0 failed.');
    const bad = run(githubStep(), opened());
    expect(bad.status).toBe(1);
    expect(bad.log).toContain('::error::moat test failed (exit 1)');
    expect(bad.summary).toContain('FAIL  firewall.tests.yaml:6:5');
  });

  test('GitLab: the same', () => {
    expect(run(gitlabJob(), policy()).status).toBe(0);
    const bad = run(gitlabJob(), opened());
    expect(bad.status).toBe(1);
    expect(bad.log).toContain('3 passed, 1 failed.');
  });
});
