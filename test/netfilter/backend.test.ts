/** Backend detection and reads with a scripted runner: the decisions, without a kernel. */
import { describe, expect, test } from '@jest/globals';
import { SubprocessError, UserError } from '../../src/core/errors.js';
import type { CommandResult, CommandRunner } from '../../src/core/runner.js';
import { detectBackend } from '../../src/netfilter/backend.js';
import { readLiveNetfilter } from '../../src/netfilter/read.js';

type Script = Record<string, CommandResult | 'missing'>;

const ok = (stdout: string): CommandResult => ({ stdout, stderr: '', exitCode: 0 });
const noFile: CommandResult = { stdout: '', stderr: 'No such file', exitCode: 1 };
const RULES = '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n';
const EMPTY = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n';

/** Answers from the script by full command line; records what ran. */
function scripted(script: Script): { runner: CommandRunner; ran: string[] } {
  const ran: string[] = [];
  const runner: CommandRunner = (command, args) => {
    const line = [command, ...args].join(' ');
    ran.push(line);
    const answer = script[line];
    if (answer === 'missing') {
      return Promise.reject(new SubprocessError(command, undefined, `${command} is not installed`));
    }
    return Promise.resolve(answer ?? ok(''));
  };
  return { runner, ran };
}

describe('detectBackend', () => {
  test('no legacy tables registered: iptables-legacy-save is never run', async () => {
    const { runner, ran } = scripted({
      'cat /proc/net/ip_tables_names': noFile,
      'cat /proc/net/ip6_tables_names': ok(''),
      // Would claim rules if it were asked; it must not be.
      'iptables-legacy-save': ok(RULES),
      'ip6tables-legacy-save': ok(RULES),
      'iptables -V': ok('iptables v1.8.9 (nf_tables)\n'),
    });
    expect(await detectBackend(runner, 'auto')).toBe('nft');
    expect(ran.filter((c) => c.includes('legacy'))).toEqual([]);
  });

  test('a legacy host (nft empty, iptables -V legacy): the large legacy ruleset is never read', async () => {
    const { runner, ran } = scripted({
      'cat /proc/net/ip_tables_names': ok('filter\nnat\n'),
      'cat /proc/net/ip6_tables_names': ok('filter\n'),
      'iptables-nft-save': ok(''),
      'ip6tables-nft-save': ok(''),
      'iptables-legacy-save': ok(RULES),
      'ip6tables-legacy-save': ok(RULES),
      'iptables -V': ok('iptables v1.8.9 (legacy)\n'),
    });
    expect(await detectBackend(runner, 'auto')).toBe('legacy');
    expect(ran.filter((c) => c.startsWith('ip') && c.includes('legacy'))).toEqual([]);
  });

  test('legacy rules while iptables defaults to nft: legacy, read to be sure', async () => {
    const { runner, ran } = scripted({
      'cat /proc/net/ip_tables_names': ok('filter\n'),
      'iptables-nft-save': ok(EMPTY),
      'iptables-legacy-save': ok(RULES),
      'iptables -V': ok('iptables v1.8.9 (nf_tables)\n'),
    });
    expect(await detectBackend(runner, 'auto')).toBe('legacy');
    expect(ran).toContain('iptables-legacy-save');
  });

  test('iptables without an nft backend (before 1.8) and no rules: legacy', async () => {
    const { runner } = scripted({
      'iptables-nft-save': 'missing',
      'ip6tables-nft-save': 'missing',
      'cat /proc/net/ip_tables_names': ok('filter\n'),
      'iptables-legacy-save': ok(EMPTY),
      'iptables -V': ok('iptables v1.6.1\n'),
    });
    expect(await detectBackend(runner, 'auto')).toBe('legacy');
  });

  test('an nft table iptables cannot show still counts as nft holding rules', async () => {
    const { runner } = scripted({
      'iptables-nft-save': ok("# Table `filter' is incompatible, use 'nft' tool.\n"),
      'cat /proc/net/ip_tables_names': ok('filter\n'),
      'iptables-legacy-save': ok(RULES),
    });
    const detection = detectBackend(runner, 'auto');
    await expect(detection).rejects.toBeInstanceOf(UserError);
    await expect(detection).rejects.toThrow(/nft: +iptables-nft-save: unreadable/);
  });

  test('no iptables at all: a UserError, not a crash', async () => {
    const { runner } = scripted({ 'iptables -V': 'missing' });
    await expect(detectBackend(runner, 'auto')).rejects.toThrow(/iptables is not installed/);
  });
});

describe('readLiveNetfilter', () => {
  test('no ipset binary: no sets', async () => {
    const { runner } = scripted({
      'iptables-nft -t filter -S': ok('-P INPUT ACCEPT\n-A INPUT -j ACCEPT\n'),
      'ip6tables-nft -t filter -S': ok(''),
      'ipset save': 'missing',
    });
    const live = await readLiveNetfilter(runner, 'nft');
    expect(live.ipsets.size).toBe(0);
    expect(live.rulesets.ipv4.tables.get('filter')!.chains.get('INPUT')!.rules).toHaveLength(1);
    expect(live.rulesets.ipv6.tables.get('filter')!.chains.size).toBe(0);
  });

  test('ipset save failing is reported with its stderr', async () => {
    const { runner } = scripted({
      'ipset save': { stdout: '', stderr: 'Kernel error received: boom', exitCode: 1 },
    });
    await expect(readLiveNetfilter(runner, 'nft')).rejects.toThrow(/ipset save failed.*\n.*boom/);
  });
});
