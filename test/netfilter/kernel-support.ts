/** Helpers for netfilter tests against the real kernel, always inside a throwaway namespace. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandRunner } from '../../src/core/runner.js';
import { execRunner } from '../../src/host/exec-runner.js';
import { toolFor } from '../../src/netfilter/backend.js';
import type { IptablesBackend, LiveRuleset, LiveTable } from '../../src/netfilter/model.js';
import type { Family } from '../../src/policy/model.js';
import { NetNs } from '../support/netns.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/netfilter');

/** A file of test/fixtures/netfilter. */
export const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

/** The iptables-save fixtures (Docker's layouts). */
export const saveFixtures: readonly string[] = readdirSync(FIXTURES).filter((f) =>
  f.endsWith('.iptables-save'),
);

/** Loads restore input into `ns` with the given backend. */
export function load(ns: NetNs, backend: IptablesBackend, family: Family, text: string): void {
  // Docker 28.0.0's FORWARD rules reference this set; iptables refuses them without it.
  if (text.includes('docker-ext-bridges-v4')) {
    ns.exec('ipset', ['create', 'docker-ext-bridges-v4', 'hash:net', '-exist']);
  }
  ns.exec(toolFor(backend, family, 'restore'), [], text);
}

/** A CommandRunner whose every command runs inside `ns`. */
export function nsRunner(ns: NetNs): CommandRunner {
  return (command, args, input, options) =>
    execRunner('ip', ['netns', 'exec', ns.name, command, ...args], input, options);
}

/** A runner that records what it ran, to assert what detection did and did not touch. */
export function recording(runner: CommandRunner): { runner: CommandRunner; ran: string[] } {
  const ran: string[] = [];
  return {
    ran,
    runner: (command, args, input) => {
      ran.push([command, ...args].join(' '));
      return runner(command, args, input);
    },
  };
}

/** Runs `body` with fresh namespaces, destroyed afterwards even when it throws. */
export async function withNamespaces<T>(
  count: number,
  body: (...namespaces: NetNs[]) => Promise<T> | T,
): Promise<T> {
  const namespaces: NetNs[] = [];
  try {
    for (let i = 0; i < count; i++) namespaces.push(NetNs.create('nf'));
    return await body(...namespaces);
  } finally {
    for (const ns of namespaces) ns.destroy();
  }
}

/** The ruleset restricted to some tables (a fresh kernel may list tables nobody loaded). */
export function onlyTables(ruleset: LiveRuleset, names: Iterable<string>): LiveRuleset {
  const wanted = new Set(names);
  const tables = new Map<string, LiveTable>();
  for (const [name, table] of ruleset.tables) if (wanted.has(name)) tables.set(name, table);
  return { family: ruleset.family, tables };
}

/** The legacy tables registered in the namespace (reading loads nothing). */
export function legacyTables(ns: NetNs, family: 'ipv4' | 'ipv6'): string[] {
  const file = family === 'ipv4' ? '/proc/net/ip_tables_names' : '/proc/net/ip6_tables_names';
  const result = ns.run('cat', [file]);
  return result.stdout.split('\n').filter((l) => l !== '');
}
