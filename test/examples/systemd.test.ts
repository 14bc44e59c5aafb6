/**
 * examples/systemd: the unit files pass `systemd-analyze verify`, and say what the README says
 * (paths, schedule, boot ordering). Without systemd-analyze (Debian package `systemd`) the verify
 * test is skipped locally and fails under CI=true, as test/support/prereq.ts does for root tools.
 */
import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeWith } from '../support/prereq.js';

const DIR = new URL('../../examples/systemd/', import.meta.url);
const read = (name: string): string => readFileSync(new URL(name, DIR), 'utf8');
const UNITS = readdirSync(DIR).filter((f) => /\.(service|timer)$/.test(f));
const MOAT = '/usr/local/bin/moat';

/** `Key=value` lines of one section of a unit file. */
function section(unit: string, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const raw of unit.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header?.[1] !== undefined) {
      current = header[1];
      continue;
    }
    if (current !== name) continue;
    const at = line.indexOf('=');
    const key = line.slice(0, at);
    out.set(key, [...(out.get(key) ?? []), line.slice(at + 1)]);
  }
  return out;
}

const value = (unit: string, name: string, key: string): string[] =>
  section(read(unit), name).get(key) ?? [];

/**
 * Copies of the units with ExecStart pointing at a stub: verify checks that the command is an
 * executable file, and no moat is installed on a test machine.
 */
function verify(units: Record<string, string>): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'moat-units-'));
  try {
    const stub = join(dir, 'moat');
    writeFileSync(stub, '#!/bin/sh\nexit 0\n');
    chmodSync(stub, 0o755);
    for (const [name, text] of Object.entries(units)) {
      writeFileSync(join(dir, name), text.replaceAll(MOAT, stub));
    }
    const result = spawnSync(
      'systemd-analyze',
      ['verify', ...Object.keys(units).map((n) => join(dir, n))],
      { encoding: 'utf8', timeout: 30_000 },
    );
    return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describeWith(['systemd-analyze'], 'examples/systemd: systemd-analyze verify', () => {
  test('every unit verifies without a warning', () => {
    expect(UNITS.sort()).toEqual([
      'moat-apply.service',
      'moat-apply.timer',
      'moat-boot.service',
      'moat-watch.service',
    ]);
    const result = verify(Object.fromEntries(UNITS.map((u) => [u, read(u)])));
    expect(result).toEqual({ status: 0, output: '' });
  });

  test('a broken unit is caught (the check above can fail)', () => {
    const broken = read('moat-apply.service').replace('Type=oneshot', 'Type=oneshoot\nExecStrat=x');
    const result = verify({ 'moat-apply.service': broken });
    expect(result.output).toMatch(/oneshoot/);
    expect(result.output).toMatch(/ExecStrat/);
  });
});

describe('examples/systemd: what the units say', () => {
  const services = UNITS.filter((u) => u.endsWith('.service'));

  test.each(services)('%s runs /usr/local/bin/moat on /etc/moat/firewall.yaml', (unit) => {
    const [exec, ...more] = value(unit, 'Service', 'ExecStart');
    expect(more).toEqual([]);
    expect(exec).toMatch(/^\/usr\/local\/bin\/moat (apply|watch) /);
    expect(exec).toContain('--file /etc/moat/firewall.yaml');
    expect(exec).toContain('--metrics-file ');
    expect(value(unit, 'Unit', 'After').join(' ')).toContain('docker.service');
    expect(value(unit, 'Service', 'StateDirectory')).toEqual(['moat']);
  });

  test('the apply unit is a quiet, unattended oneshot', () => {
    expect(value('moat-apply.service', 'Service', 'Type')).toEqual(['oneshot']);
    const exec = value('moat-apply.service', 'Service', 'ExecStart').join('');
    expect(exec).toMatch(/ apply .*--auto-approve/);
    expect(exec).toContain('--quiet');
  });

  test('the timer starts the apply unit every 5 minutes and catches up after downtime', () => {
    expect(value('moat-apply.timer', 'Timer', 'OnCalendar')).toEqual(['*:0/5']);
    expect(value('moat-apply.timer', 'Timer', 'Persistent')).toEqual(['true']);
    expect(value('moat-apply.timer', 'Timer', 'Unit')).toEqual(['moat-apply.service']);
    expect(value('moat-apply.timer', 'Install', 'WantedBy')).toEqual(['timers.target']);
  });

  test('the boot unit applies once Docker is up, as part of multi-user.target', () => {
    expect(value('moat-boot.service', 'Unit', 'Wants')).toEqual(['docker.service']);
    expect(value('moat-boot.service', 'Install', 'WantedBy')).toEqual(['multi-user.target']);
    expect(value('moat-boot.service', 'Service', 'RemainAfterExit')).toEqual(['yes']);
    expect(value('moat-boot.service', 'Service', 'ExecStart').join('')).toContain(
      ' apply --file /etc/moat/firewall.yaml --auto-approve',
    );
  });

  test('the watch unit runs moat watch and restarts it on failure', () => {
    const exec = value('moat-watch.service', 'Service', 'ExecStart').join('');
    expect(exec).toMatch(/^\/usr\/local\/bin\/moat watch .*--interval 5m/);
    expect(value('moat-watch.service', 'Service', 'Restart')).toEqual(['on-failure']);
    expect(value('moat-watch.service', 'Install', 'WantedBy')).toEqual(['multi-user.target']);
  });

  test('cron.example: a 5-minute apply and an @reboot apply, as root', () => {
    const lines = read('cron.example')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^\*\/5 \* \* \* \* root \/usr\/local\/bin\/moat apply --file \/etc\/moat\/firewall\.yaml --auto-approve --quiet /,
    );
    expect(lines[1]).toMatch(/^@reboot root .*\/usr\/local\/bin\/moat apply .*--auto-approve/);
    // cron turns an unescaped % into a newline.
    expect(lines.join('\n')).not.toContain('%');
    // The @reboot line is valid sh.
    const check = spawnSync('sh', ['-n', '-c', lines[1]?.replace(/^@reboot root /, '') ?? ''], {
      encoding: 'utf8',
    });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});
