/**
 * Every `moat <command> --flag` that the unattended examples (systemd, cron, CI, Ansible) run is
 * one the built CLI accepts: a renamed flag breaks these tests, not a user's 3 a.m. timer.
 */
import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { CLI, assertBuilt } from '../support/moat-cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMMANDS = 'validate|plan|apply|watch|status|show|snapshot|init';

interface Invocation {
  file: string;
  command: string;
  flags: string[];
}

function flagsOf(words: readonly string[]): string[] {
  return words.filter((w) => /^--[a-z]/.test(w)).map((w) => w.replace(/=.*$/, ''));
}

/** `moat apply --file … --quiet` on one line of a unit, a crontab or a CI script. */
function textInvocations(file: string): Invocation[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: Invocation[] = [];
  for (const m of text.matchAll(new RegExp(`\\bmoat (${COMMANDS})\\b([^\\n;|&)]*)`, 'g'))) {
    out.push({ file, command: m[1] ?? '', flags: flagsOf((m[2] ?? '').split(/\s+/)) });
  }
  return out;
}

/** Ansible `command: argv: ['{{ moat_bin }}', apply, --file, …]`. */
function ansibleInvocations(file: string): Invocation[] {
  const out: Invocation[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      if (node[0] === '{{ moat_bin }}' && typeof node[1] === 'string') {
        out.push({ file, command: node[1], flags: flagsOf(node.map(String)) });
      } else node.forEach(walk);
    } else if (typeof node === 'object' && node !== null) {
      Object.values(node).forEach(walk);
    }
  };
  walk(parse(readFileSync(join(ROOT, file), 'utf8')));
  return out;
}

const files = (dir: string): string[] => readdirSync(join(ROOT, dir)).map((f) => `${dir}/${f}`);

const invocations: Invocation[] = [
  ...[...files('examples/systemd'), ...files('examples/ci')]
    .filter((f) => !f.endsWith('.md'))
    .flatMap(textInvocations),
  ...ansibleInvocations('examples/ansible/moat.yml'),
];

const helpCache = new Map<string, string>();
function help(command: string): string {
  const cached = helpCache.get(command);
  if (cached !== undefined) return cached;
  assertBuilt();
  const args = command === '' ? ['--help'] : [command, '--help'];
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  const text = `${result.stdout}${result.stderr}`;
  helpCache.set(command, text);
  return text;
}

describe('examples run only flags the CLI knows', () => {
  test('the examples hold moat invocations for each unattended use', () => {
    const seen = new Set(invocations.map((i) => `${i.file.split('/')[1] ?? ''} ${i.command}`));
    for (const expected of [
      'systemd apply',
      'systemd watch',
      'ci validate',
      'ci plan',
      'ci apply',
      'ansible validate',
      'ansible plan',
      'ansible apply',
    ]) {
      expect(seen).toContain(expected);
    }
  });

  const distinct = [
    ...new Map(
      invocations.map((i) => [`${i.file} ${i.command} ${i.flags.join(' ')}`, i] as const),
    ).values(),
  ];
  test.each(distinct.map((i) => [i.file, i.command, i.flags.join(' ')] as const))(
    '%s: moat %s %s',
    (_file, command, flags) => {
      const known = `${help(command)}\n${help('')}`;
      expect(known).toContain(`Usage: moat ${command}`);
      for (const flag of flags.split(' ').filter((f) => f !== '')) {
        expect(known).toMatch(new RegExp(`(^|[ ,])${flag}\\b`, 'm'));
      }
    },
  );
});
