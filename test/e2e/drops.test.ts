/**
 * What moat drops, end to end with real packets: a client in the sandbox's outside namespace is
 * dropped by one rule at a time, over IPv4 and IPv6, and exactly that rule's counters rise in
 * `moat status --json`; a logged drop is read back by ulogd2 (a real NFLOG consumer, inside the
 * sandbox's namespace) and `moat drops` maps it to the policy line; a flood of 10,000 blocked
 * SYNs (hping3) logs no more lines than the configured limit; the metrics file passes promtool.
 */
import { afterAll, expect, test } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HOST_V4, HOST_V6 } from '../support/docker-sandbox.js';
import { describeOnDocker } from '../support/docker-targets.js';
import { useLab } from '../support/lab.js';
import { CLI } from '../support/moat-cli.js';
import { checkMetrics, promtoolPath } from '../support/promtool.js';

const NFLOG_GROUP = 7;
const policyText = (limit: string): string => `version: 1
defaults:
  ingress: host
logging:
  group: ${NFLOG_GROUP}
  limit: ${limit}
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host]
        log: true
  api:
    ingress:
      - ports: [8080/tcp]
        from: [203.0.113.0/24]
`;

const ULOGD_PLUGINS = '/usr/lib/x86_64-linux-gnu/ulogd';

interface Row {
  rule: string;
  family: string;
  packets: number;
  position: string | null;
}

describeOnDocker(
  ['20.10.24'],
  ['root', 'dockerd', 'iptables', 'ip', 'busybox', 'curl', 'ulogd', 'hping3'],
  'drops: counters per policy rule, logging through NFLOG',
  () => {
    const lab = useLab({}, (lab) => {
      lab.runHttpd('ghost', ['2368:2368'], [], 2368);
      lab.runHttpd('api', ['8080:80'], [], 80);
      lab.runHttpd('other', ['8081:80'], [], 80);
      const applied = lab.moat([
        'apply',
        '-f',
        lab.policy.write(policyText('5/hour')),
        '--auto-approve',
        '--metrics-file',
        metricsFile,
      ]);
      if (applied.status !== 0) throw new Error(`apply: ${applied.stdout}${applied.stderr}`);
    });
    const policy = lab.policy;
    const logFile = join(policy.dir, 'drops.log');
    const metricsFile = join(policy.dir, 'moat.prom');
    let ulogd: ChildProcess | undefined;
    const run = (args: string[]) => lab.moat(args);

    /** Packets per `rule family`, from `moat status --json`. */
    const counters = (): Map<string, number> => {
      const status = run(['status', '-f', policy.file, '--json']);
      if (status.status !== 0) throw new Error(`status exited ${status.status}: ${status.stderr}`);
      const doc = JSON.parse(status.stdout) as { drops: { rules: Row[] } };
      return new Map(doc.drops.rules.map((r) => [`${r.rule} ${r.family}`, r.packets]));
    };
    /** The rules whose counters rose between two reads. */
    const rose = (before: Map<string, number>, after: Map<string, number>): string[] =>
      [...after].filter(([k, v]) => v > (before.get(k) ?? 0)).map(([k]) => k);
    const connect = (url: string): string => lab.sandbox.httpStatusFromWan(url);
    const moatLines = (): string[] =>
      existsSync(logFile)
        ? readFileSync(logFile, 'utf8')
            .split('\n')
            .filter((l) => l.includes('moat-drop '))
        : [];

    afterAll(async () => {
      // Killed by a signal already, it has no exit code but will send no 'exit' either.
      const child = ulogd;
      if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      if ((await Promise.race([exited, sleep(5000, 'late')])) === 'late') {
        child.kill('SIGKILL');
        await exited;
      }
    }, 120_000);

    test.each([
      ['ghost', 'ipv4', `http://${HOST_V4}:2368/`, 'containers.ghost.ingress[0] ipv4'],
      ['ghost', 'ipv6', `http://[${HOST_V6}]:2368/`, 'containers.ghost.ingress[0] ipv6'],
      ['api', 'ipv4', `http://${HOST_V4}:8080/`, 'containers.api.ingress[0] ipv4'],
      ['api', 'ipv6', `http://[${HOST_V6}]:8080/`, 'containers.api.ingress[0] ipv6'],
      ['a port no rule names', 'ipv4', `http://${HOST_V4}:8081/`, 'defaults.ingress ipv4'],
      ['a port no rule names', 'ipv6', `http://[${HOST_V6}]:8081/`, 'defaults.ingress ipv6'],
    ])(
      'a client dropped at %s over %s raises that rule’s counter and no other',
      (_what, _family, url, rule) => {
        const before = counters();
        expect(before.has(rule)).toBe(true);
        expect(connect(url)).toBe('000');
        expect(rose(before, counters())).toEqual([rule]);
      },
    );

    test('status shows the drops per rule, with the policy line, in text', () => {
      const status = run(['status', '-f', policy.file]);
      const lines = policy.read().split('\n');
      const at = lines.findIndex((l) => l.includes('- ports: [2368/tcp]'));
      const column = (lines[at] ?? '').indexOf('ports') + 1;
      expect(status.stdout).toMatch(/^Drops: +IPv4 \d+ packets? \(\d+ bytes\), IPv6 \d+ packets?/m);
      expect(status.stdout).toMatch(
        new RegExp(
          `^  ghost ingress rule 1 \\(${policy.file}:${at + 1}:${column}\\): IPv4 \\d+ packets? \\(\\d+ bytes\\), IPv6 \\d+`,
          'm',
        ),
      );
      expect(status.stdout).toMatch(/^  defaults\.ingress \(.*\): IPv4 \d+/m);
    });

    test('a logged drop is read back by ulogd2 and mapped to the policy line', async () => {
      const conf = join(policy.dir, 'ulogd.conf');
      writeFileSync(
        conf,
        [
          '[global]',
          `logfile="${join(policy.dir, 'ulogd.log')}"`,
          'loglevel=3',
          ...['inppkt_NFLOG', 'raw2packet_BASE', 'filter_IFINDEX', 'filter_IP2STR']
            .concat(['filter_PRINTPKT', 'output_LOGEMU'])
            .map((p) => `plugin="${ULOGD_PLUGINS}/ulogd_${p}.so"`),
          'stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU',
          '[log1]',
          `group=${NFLOG_GROUP}`,
          '[emu1]',
          `file="${logFile}"`,
          'sync=1',
          '',
        ].join('\n'),
      );
      // In the sandbox's host namespace only: NFLOG groups are per namespace.
      // A fresh logging rule (a new limit): the earlier tests' packets used up its burst.
      expect(
        run(['apply', '-f', policy.write(policyText('20/hour')), '--auto-approve']).status,
      ).toBe(0);
      ulogd = spawn('nsenter', [`--net=${lab.sandbox.host.path}`, 'ulogd', '-c', conf], {
        stdio: 'ignore',
      });
      const ulogdLog = join(policy.dir, 'ulogd.log');
      for (let i = 0; i < 100; i++) {
        if (existsSync(ulogdLog) && readFileSync(ulogdLog, 'utf8').includes('main loop')) break;
        await sleep(100);
      }
      expect(readFileSync(ulogdLog, 'utf8')).toContain('main loop');

      expect(connect(`http://${HOST_V4}:2368/`)).toBe('000');
      expect(connect(`http://[${HOST_V6}]:2368/`)).toBe('000');
      expect(connect(`http://${HOST_V4}:8080/`)).toBe('000'); // api's rule does not log
      for (let i = 0; i < 50 && moatLines().length < 2; i++) await sleep(100);
      const logged = moatLines();
      expect(logged.some((l) => l.includes('SRC=198.51.100.2 '))).toBe(true);
      expect(logged.some((l) => l.includes('SRC=2001:db8:100::2 '))).toBe(true);
      expect(logged.every((l) => l.includes(' ghost.ingress[0] '))).toBe(true);

      const lines = policy.read().split('\n');
      const at = lines.findIndex((l) => l.includes('- ports: [2368/tcp]'));
      const where = `${policy.file}:${at + 1}:${(lines[at] ?? '').indexOf('ports') + 1}`;
      const read = run(['drops', '-f', policy.file, '--log', logFile]);
      expect(read.stderr).toBe('');
      expect(read.status).toBe(0);
      const explained = read.stdout.trim().split('\n');
      expect(explained).toHaveLength(logged.length);
      for (const line of explained)
        expect(line).toContain(`dropped by ghost ingress rule 1 (${where}): from [host] only`);
      expect(explained.some((l) => l.includes('TCP 198.51.100.2:'))).toBe(true);
      expect(explained.some((l) => l.includes('TCP [2001:db8:100::2]:'))).toBe(true);

      // Following: a drop logged after the start is read back too; SIGTERM ends it, exit 0.
      const follow = spawn(
        'nsenter',
        [
          `--net=${lab.sandbox.host.path}`,
          process.execPath,
          CLI,
          'drops',
          '-f',
          policy.file,
          '--log',
          logFile,
          '--follow',
        ],
        {
          env: { ...process.env, ...lab.sandbox.env, NO_COLOR: '1' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let followed = '';
      follow.stdout.setEncoding('utf8').on('data', (chunk: string) => (followed += chunk));
      const exited = new Promise<number | null>((resolve) => follow.once('exit', resolve));
      for (let i = 0; i < 100 && followed.split('\n').length <= explained.length; i++)
        await sleep(100);
      expect(followed.trim().split('\n')).toHaveLength(explained.length);
      expect(connect(`http://${HOST_V4}:2368/`)).toBe('000');
      for (let i = 0; i < 100 && followed.trim().split('\n').length <= explained.length; i++)
        await sleep(100);
      follow.kill('SIGTERM');
      expect(await exited).toBe(0);
      const later = followed.trim().split('\n').slice(explained.length);
      expect(later.length).toBeGreaterThan(0);
      for (const line of later)
        expect(line).toContain(`dropped by ghost ingress rule 1 (${where})`);

      const one = run(['drops', '-f', policy.file, '--line', logged[0] ?? '', '--json']);
      expect(one.status).toBe(0);
      const doc = JSON.parse(one.stdout) as { rules: { rule: string; position: string }[] };
      expect(doc.rules).toEqual([
        {
          rule: 'containers.ghost.ingress[0]',
          path: ['containers', 'ghost', 'ingress', 0],
          position: where,
        },
      ]);
    }, 60_000);

    test('counters of unchanged rules survive an apply; a flood of 10,000 SYNs logs at most the limit', async () => {
      const rule = 'containers.ghost.ingress[0] ipv4';
      const before = counters().get(rule) ?? 0;
      expect(before).toBeGreaterThan(0);
      // A new limit replaces the logging rules (a fresh bucket), not the DROP rules.
      const applied = run(['apply', '-f', policy.write(policyText('3/hour')), '--auto-approve']);
      expect(applied.status).toBe(0);
      expect(applied.stdout).toMatch(/Apply complete: 0 added, [1-9]\d* changed, 0 destroyed/);
      expect(counters().get(rule)).toBe(before);

      const linesBefore = moatLines().length;
      const started = Date.now();
      const flood = spawnSync(
        'nsenter',
        [
          `--net=${lab.sandbox.wan.path}`,
          'hping3',
          '-S',
          '-p',
          '2368',
          '-c',
          '10000',
          '-i',
          'u200',
          HOST_V4,
        ],
        { encoding: 'utf8', timeout: 120_000 },
      );
      const seconds = (Date.now() - started) / 1000;
      expect(`${flood.stdout}${flood.stderr}`).toContain('10000 packets transmitted');
      await sleep(1000); // ulogd writes what the kernel sent it
      const logged = moatLines().length - linesBefore;
      const dropped = (counters().get(rule) ?? 0) - before;
      console.log(
        `flood: ${dropped} SYNs dropped in ${seconds.toFixed(1)} s, ${logged} line(s) logged (limit 3/hour)`,
      );
      // 3 at once, then 3 an hour: within a flood of seconds, a refill adds at most one more.
      expect(logged).toBeGreaterThanOrEqual(1);
      expect(logged).toBeLessThanOrEqual(3 + Math.ceil((3 * seconds) / 3600));
      expect(dropped).toBeGreaterThan(9_000); // a few may be lost on the veth, never more sent
      expect(dropped).toBeLessThanOrEqual(10_000);
    }, 180_000);

    test('the metrics file names each rule’s drops and passes promtool check metrics', () => {
      const applied = run([
        'apply',
        '-f',
        policy.file,
        '--auto-approve',
        '--metrics-file',
        metricsFile,
      ]);
      expect(applied.status).toBe(0);
      const text = readFileSync(metricsFile, 'utf8');
      const packets = counters().get('containers.ghost.ingress[0] ipv4');
      expect(text).toContain(
        `moat_dropped_packets_total{group="ghost",direction="ingress",rule="containers.ghost.ingress[0]",family="ipv4"} ${packets}`,
      );
      expect(text).toMatch(
        /^moat_dropped_bytes_total\{group="\(defaults\)",direction="ingress",rule="defaults.ingress",family="ipv6"\} [1-9]\d*$/m,
      );
      const promtool = promtoolPath();
      if (promtool === undefined)
        throw new Error('promtool is missing: run scripts/install-test-deps.sh as root');
      const checked = checkMetrics(promtool, text);
      expect(checked.output).toBe('');
      expect(checked.status).toBe(0);
    });
  },
);
