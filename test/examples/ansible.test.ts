/**
 * examples/ansible: the playbook parses, maps moat's exit codes to Ansible's states, and every
 * policy file of the fleet layout validates. With ansible-playbook installed (Debian package
 * ansible-core), the playbook also runs against localhost with a stub moat whose plan/apply exit
 * codes the test chooses (validate is the real, built CLI): ~2 s per run.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { formatDiagnostic } from '../../src/policy/format.js';
import { parsePolicy } from '../../src/policy/parse.js';
import { CLI, assertBuilt } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';

const DIR = fileURLToPath(new URL('../../examples/ansible/', import.meta.url));
const read = (path: string): string => readFileSync(join(DIR, path), 'utf8');

interface Task {
  name: string;
  block?: Task[];
  always?: Task[];
  when?: string;
  check_mode?: boolean;
  changed_when?: string | boolean;
  failed_when?: string;
  register?: string;
  [module: string]: unknown;
}

function tasksOf(playbook: string): Map<string, Task> {
  const plays = parse(read(playbook)) as { tasks: Task[] }[];
  const out = new Map<string, Task>();
  const walk = (tasks: readonly Task[]): void => {
    for (const task of tasks) {
      out.set(task.name, task);
      walk(task.block ?? []);
      walk(task.always ?? []);
    }
  };
  for (const play of plays) walk(play.tasks);
  return out;
}

describe('examples/ansible: the playbook', () => {
  const tasks = tasksOf('moat.yml');
  const task = (name: string): Task => {
    const found = tasks.get(name);
    if (found === undefined) throw new Error(`no task named ${name}`);
    return found;
  };
  const argv = (name: string): unknown =>
    (task(name)['ansible.builtin.command'] as { argv: unknown }).argv;

  test('validates, then plans in check mode and applies otherwise', () => {
    expect(argv('Validate the policy')).toEqual([
      '{{ moat_bin }}',
      'validate',
      '--file',
      '{{ moat_staged.path }}',
    ]);
    expect(argv('Plan (check mode)')).toEqual([
      '{{ moat_bin }}',
      'plan',
      '--file',
      '{{ moat_staged.path }}',
      '--detailed-exitcode',
    ]);
    expect(argv('Apply')).toEqual(
      expect.arrayContaining(['apply', '--auto-approve', '--detailed-exitcode']),
    );
    // command tasks are skipped in check mode unless told otherwise.
    expect(task('Validate the policy').check_mode).toBe(false);
    expect(task('Plan (check mode)')).toMatchObject({
      when: 'ansible_check_mode',
      check_mode: false,
    });
    expect(task('Apply').when).toBe('not ansible_check_mode');
    expect(task('Install the policy').when).toBe('not ansible_check_mode');
  });

  test('maps exit codes: 2 → changed, 0 → ok, anything else → failed', () => {
    for (const [name, result] of [
      ['Plan (check mode)', 'moat_plan'],
      ['Apply', 'moat_apply'],
    ] as const) {
      expect(task(name).register).toBe(result);
      expect(task(name).changed_when).toBe(`${result}.rc == 2`);
      expect(task(name).failed_when).toBe(`${result}.rc not in [0, 2]`);
    }
  });

  test('every policy of the fleet layout validates', () => {
    const files = [
      ...readdirSync(join(DIR, 'hosts')).map((f) => `hosts/${f}`),
      ...readdirSync(join(DIR, 'policies')).map((f) => `policies/${f}`),
    ];
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const file of files) {
      const text = read(file);
      const result = parsePolicy(text, file);
      expect(result.diagnostics.map((d) => formatDiagnostic(d, text))).toEqual([]);
    }
  });

  test('every group_vars moat_policy names a file in policies/', () => {
    for (const file of readdirSync(join(DIR, 'group_vars'))) {
      const vars = parse(read(`group_vars/${file}`)) as { moat_policy?: string };
      expect(existsSync(join(DIR, 'policies', `${vars.moat_policy ?? ''}.yaml`))).toBe(true);
    }
  });
});

interface PlaybookRun {
  status: number | null;
  output: string;
  /** Task name → ok | changed | skipping | fatal. */
  states: Map<string, string>;
  calls: string[];
}

describeWith(['ansible-playbook'], 'examples/ansible: against localhost', () => {
  let dir = '';
  /** The temp dir the playbook's tempfile task writes to: this test's own. */
  const staging = (): string => {
    const path = join(dir, 'staging');
    mkdirSync(path, { recursive: true });
    return path;
  };

  beforeAll(() => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'moat-ansible-'));
    // validate runs the real CLI; plan and apply answer with the exit code the test chose.
    writeFileSync(
      join(dir, 'moat'),
      [
        '#!/bin/sh',
        `echo "$*" >> '${dir}/calls'`,
        `[ "$1" = validate ] && exec '${process.execPath}' '${CLI}' "$@"`,
        `exit "$(cat '${dir}/rc-'"$1")"`,
        '',
      ].join('\n'),
    );
    chmodSync(join(dir, 'moat'), 0o755);
    writeFileSync(
      join(dir, 'inventory.ini'),
      [
        '[docker_hosts]',
        'docker-host-1.example.net',
        'no-policy.example.net',
        '[docker_hosts:vars]',
        `ansible_connection=local`,
        `ansible_python_interpreter=/usr/bin/python3`,
        '',
      ].join('\n'),
    );
  });

  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  function run(
    options: { check?: boolean; plan?: number; apply?: number; host?: string },
    extra: string[] = [],
  ): PlaybookRun {
    writeFileSync(join(dir, 'rc-plan'), `${options.plan ?? 0}\n`);
    writeFileSync(join(dir, 'rc-apply'), `${options.apply ?? 0}\n`);
    rmSync(join(dir, 'calls'), { force: true });
    const result = spawnSync(
      'ansible-playbook',
      [
        '-i',
        join(dir, 'inventory.ini'),
        '--limit',
        options.host ?? 'docker-host-1.example.net',
        'moat.yml',
        ...(options.check === true ? ['--check'] : []),
        '-e',
        `moat_bin=${join(dir, 'moat')}`,
        '-e',
        `moat_policy_path=${join(dir, 'etc', 'firewall.yaml')}`,
        '-e',
        'ansible_become=false',
        ...extra,
      ],
      {
        cwd: DIR,
        encoding: 'utf8',
        timeout: 60_000,
        env: {
          ...process.env,
          ANSIBLE_NOCOLOR: '1',
          ANSIBLE_HOME: join(dir, 'home'),
          ANSIBLE_LOCAL_TEMP: join(dir, 'tmp'),
          ANSIBLE_REMOTE_TEMP: join(dir, 'tmp'),
          ANSIBLE_RETRY_FILES_ENABLED: 'false',
          // tempfile stages the policy here: this run's own, so other runs' files never count.
          TMPDIR: staging(),
        },
      },
    );
    const output = `${result.stdout}${result.stderr}`;
    const states = new Map<string, string>();
    for (const m of output.matchAll(/^TASK \[(.+?)\] \*+\n(ok|changed|skipping|fatal)/gm)) {
      states.set(m[1] ?? '', m[2] ?? '');
    }
    const callsFile = join(dir, 'calls');
    const calls = existsSync(callsFile) ? readFileSync(callsFile, 'utf8').trim().split('\n') : [];
    return { status: result.status, output, states, calls };
  }

  const noStagingLeft = (): void => {
    // The staging file is removed in `always`, also after a failure.
    const staged = readdirSync(staging()).filter((f) => /^ansible\..*\.moat\.yaml$/.test(f));
    expect(staged).toEqual([]);
  };

  test('check mode, plan exit 0 → ok; nothing installed, nothing applied', () => {
    const r = run({ check: true, plan: 0 });
    expect(r.status).toBe(0);
    expect(r.states.get('Plan (check mode)')).toBe('ok');
    expect(r.states.get('Apply')).toBe('skipping');
    expect(r.calls.map((c) => c.split(' ')[0])).toEqual(['validate', 'plan']);
    expect(existsSync(join(dir, 'etc', 'firewall.yaml'))).toBe(false);
    noStagingLeft();
  });

  test('check mode, plan exit 2 → changed, and the plan is shown', () => {
    const r = run({ check: true, plan: 2 });
    expect(r.status).toBe(0);
    expect(r.states.get('Plan (check mode)')).toBe('changed');
    expect(r.states.get('Show the plan')).toBe('ok');
    expect(r.output).toMatch(/changed=1 /);
  });

  test('check mode, plan exit 1 → failed', () => {
    const r = run({ check: true, plan: 1 });
    expect(r.status).not.toBe(0);
    expect(r.states.get('Plan (check mode)')).toBe('fatal');
    expect(r.output).toMatch(/failed=1 /);
    noStagingLeft();
  });

  test('apply exit 2 → changed; the host file is installed and applied', () => {
    const r = run({ apply: 2 });
    expect(r.status).toBe(0);
    expect(r.states.get('Apply')).toBe('changed');
    expect(r.states.get('Plan (check mode)')).toBe('skipping');
    expect(readFileSync(join(dir, 'etc', 'firewall.yaml'), 'utf8')).toBe(
      read('hosts/docker-host-1.example.net.yaml'),
    );
    expect(r.calls.at(-1)).toBe(
      `apply --file ${join(dir, 'etc', 'firewall.yaml')} --auto-approve --detailed-exitcode --lock-timeout 60s`,
    );
    noStagingLeft();
  });

  test('apply exit 0 → ok', () => {
    const r = run({ apply: 0 });
    expect(r.status).toBe(0);
    expect(r.states.get('Apply')).toBe('ok');
    expect(r.output).toMatch(/changed=0 /);
  });

  test.each([1, 3, 4])('apply exit %i → failed', (code) => {
    const r = run({ apply: code });
    expect(r.status).not.toBe(0);
    expect(r.states.get('Apply')).toBe('fatal');
  });

  test('an invalid policy fails validation: no plan, no apply', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ports: [2368]\n        from: [hots]\n',
    );
    const r = run({ apply: 2 }, ['-e', `moat_policy_source=${bad}`]);
    expect(r.status).not.toBe(0);
    expect(r.states.get('Validate the policy')).toBe('fatal');
    expect(r.output).toContain('hots');
    expect(r.calls.map((c) => c.split(' ')[0])).toEqual(['validate']);
    noStagingLeft();
  });

  test('a host with no policy file stops with a message', () => {
    const r = run({ host: 'no-policy.example.net' });
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('no policy for no-policy.example.net');
    expect(r.calls).toEqual([]);
  });
});
