/**
 * Running moat for real: the run record, metrics file, status, JSON logs, and watch mode
 * following Docker events, against a real dockerd.
 */
import { expect, test } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeOnDocker } from '../support/docker-targets.js';
import { useLab } from '../support/lab.js';
import { moat, scratchDir } from '../support/moat-cli.js';

const HOST_ONLY = `version: 1
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host]
  app:
    egress:
      deny:
        - to: [192.0.2.0/24]
`;

describeOnDocker(
  ['20.10.24'],
  ['root', 'dockerd', 'iptables', 'ip', 'busybox', 'curl'],
  'operations',
  () => {
    const lab = useLab({}, (lab) => {
      lab.runHttpd('ghost', ['2368:2368'], [], 2368);
      lab.policy.write(HOST_ONLY);
    });
    const policy = lab.policy;
    const metrics = join(policy.dir, 'moat.prom');
    const run = (args: string[]) => lab.moat(args);
    const save = () => lab.firewall();

    test("init writes a policy that reproduces today's exposure: its first plan is empty", () => {
      const file = join(policy.dir, 'init.yaml');
      const written = run(['init', '--out', file]);
      expect(written.status).toBe(0);
      expect(readFileSync(file, 'utf8')).toMatch(/ghost:[\s\S]*2368\/tcp[\s\S]*from: \[any\]/);
      const plan = run(['plan', '-f', file, '--detailed-exitcode']);
      expect(plan.stdout).toContain('No changes.');
      expect(plan.status).toBe(0);
      expect(run(['init', '--out', file]).stderr).toContain('--force');
    });

    test('apply records the run and writes the metrics file; status says Ready', () => {
      const applied = run([
        'apply',
        '-f',
        policy.file,
        '--auto-approve',
        '--metrics-file',
        metrics,
      ]);
      expect(applied.status).toBe(0);
      const text = readFileSync(metrics, 'utf8');
      expect(text).toMatch(/^moat_last_run_success 1$/m);
      expect(text).toMatch(/^moat_changes_applied\{kind="add"\} [1-9]\d*$/m);
      expect(text).toMatch(/^moat_info\{version="[^"]+",backend="nft"\} 1$/m);
      const status = run(['status', '-f', policy.file]);
      expect(status.status).toBe(0);
      expect(status.stdout).toMatch(/^Status: +Ready$/m);
    });

    test('drift shows in status (exit 2), and a JSON-logged apply repairs it', () => {
      expect(lab.execInHost('iptables', ['-F', 'MOAT-INPUT']).status).toBe(0);
      const status = run(['status', '-f', policy.file, '--json']);
      expect(status.status).toBe(2);
      expect(JSON.parse(status.stdout)).toMatchObject({ status: 'Drifted', pending: { drift: 1 } });

      const applied = run(['apply', '-f', policy.file, '--auto-approve', '--log-format', 'json']);
      expect(applied.status).toBe(0);
      const lines = applied.stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] ?? '')).toMatchObject({
        level: 'info',
        event: 'apply',
        result: 'changed',
        drift: true,
      });
      const history = JSON.parse(
        readFileSync(join(scratchDir(), 'state', 'runs.json'), 'utf8'),
      ) as {
        runs: { result: string }[];
      };
      expect(history.runs.map((r) => r.result)).toEqual(['changed', 'changed']);
    });

    test('a failed run is recorded and status says Failing', () => {
      const idle = run(['apply', '-f', policy.file, '--auto-approve']);
      expect(idle.status).toBe(0); // nothing to do: recorded as unchanged
      const failing = moat(lab, ['apply', '-f', policy.file, '--auto-approve'], {
        DOCKER_HOST: 'unix:///nonexistent.sock',
      });
      expect(failing.status).toBe(1);
      expect(failing.stderr).toContain('/nonexistent.sock');
      const status = run(['status', '-f', policy.file]);
      expect(status.stdout).toMatch(/^Status: +Failing$/m);
      expect(status.status).toBe(5); // not 1: that is status itself failing
    });

    test('a saved plan applies; a hand-edited one cannot inject a rule (exit 3, host unchanged)', () => {
      const planFile = join(policy.dir, 'plan.json');
      const opened = policy.dir + '/open.yaml';
      writeFileSync(opened, 'version: 1\ncontainers: {}\n');
      expect(run(['plan', '-f', opened, '--out', planFile]).status).toBe(0);
      const doc = readFileSync(planFile, 'utf8');
      const tampered = doc.replace('-j MOAT-FORWARD', '-j ACCEPT');
      expect(tampered).not.toBe(doc);
      writeFileSync(planFile, tampered);
      const before = save();
      const refused = run(['apply', '-f', opened, planFile]);
      expect(refused.status).toBe(3);
      expect(refused.stderr).toContain('nothing was applied');
      expect(save()).toBe(before);
      writeFileSync(planFile, doc);
      expect(run(['apply', '-f', opened, planFile]).status).toBe(0);
      expect(save()).not.toContain('MOAT');
      expect(run(['apply', '-f', policy.file, '--auto-approve']).status).toBe(0);
    });

    test('watch protects a new container within seconds of docker run, and stops on SIGTERM', async () => {
      // The default debounce: a container's start acts at once, whatever it is.
      const watch = lab.startWatch(['-f', policy.file, '--interval', '10m']);
      let code: number | null | undefined;
      try {
        expect(await watch.waitFor('reconciling (start)', 15_000)).toBe(true);
        await new Promise((r) => setTimeout(r, 1000)); // the start pass finishes, the event stream is up

        const started = Date.now();
        lab.docker(['run', '-d', '--name', 'app', 'moat-test/busybox', 'sleep', '600']);
        const address = lab
          .docker(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'app'])
          .trim();
        expect(address).toMatch(/^172\./);
        const until = Date.now() + 20_000;
        while (!save().includes(`-s ${address}/32`) && Date.now() < until)
          await new Promise((r) => setTimeout(r, 100));
        const protectedAfter = Date.now() - started;
        expect(save()).toMatch(
          new RegExp(`-A MOAT-EGRESS -s ${address.replace(/\./g, '\\.')}/32 .*-g MOAT-EGR-`),
        );
        console.log(`watch: container protected ${protectedAfter} ms after docker run returned`);
      } finally {
        code = await watch.stop();
      }
      expect(code).toBe(0);
      expect(watch.output).toContain('stopped');
    }, 90_000);
  },
);
