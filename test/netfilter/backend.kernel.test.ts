/**
 * Backend detection and live reads against the real kernel, each in a throwaway namespace.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { expect, test } from '@jest/globals';
import { MoatError, SubprocessError, UserError } from '../../src/core/errors.js';
import { detectBackend, toolFor } from '../../src/netfilter/backend.js';
import { SaveParseError } from '../../src/netfilter/parse-save.js';
import { readLiveNetfilter } from '../../src/netfilter/read.js';
import { describeWith } from '../support/prereq.js';
import { legacyTables, nsRunner, recording, withNamespaces } from './kernel-support.js';

const RULES_V4 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -m comment --comment "moat:ab12" -j RETURN
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
`;

const RULES_V6 = `*filter
:INPUT ACCEPT [0:0]
-A INPUT -s 2001:db8::1 -p tcp --dport 22 -j ACCEPT
COMMIT
`;

describeWith(['root', 'ip', 'iptables', 'iptables-legacy'], 'detectBackend (kernel)', () => {
  test('nft only: nft, and no legacy table gets created along the way', async () => {
    await withNamespaces(1, async (ns) => {
      ns.exec('iptables-nft-restore', [], RULES_V4);
      const { runner, ran } = recording(nsRunner(ns));
      expect(await detectBackend(runner, 'auto')).toBe('nft');
      expect(ran.some((c) => c.includes('legacy'))).toBe(false);
      expect(legacyTables(ns, 'ipv4')).toEqual([]);
      expect(legacyTables(ns, 'ipv6')).toEqual([]);
      // The check above can fail: asking iptables-legacy for a table does create it.
      ns.exec('ip6tables-legacy-save', ['-t', 'filter']);
      expect(legacyTables(ns, 'ipv6')).toEqual(['filter']);
    });
  });

  test('legacy only: legacy', async () => {
    await withNamespaces(1, async (ns) => {
      ns.exec('iptables-legacy-restore', [], RULES_V4);
      expect(await detectBackend(nsRunner(ns), 'auto')).toBe('legacy');
    });
  });

  test('legacy IPv6 rules only: legacy', async () => {
    await withNamespaces(1, async (ns) => {
      ns.exec('ip6tables-legacy-restore', [], RULES_V6);
      expect(legacyTables(ns, 'ipv4')).toEqual([]);
      expect(await detectBackend(nsRunner(ns), 'auto')).toBe('legacy');
    });
  });

  test('legacy tables present but empty (flushed) do not count: nft', async () => {
    await withNamespaces(1, async (ns) => {
      ns.exec('iptables-legacy-restore', [], '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n');
      expect(legacyTables(ns, 'ipv4')).toEqual(['filter']);
      ns.exec('iptables-nft-restore', [], RULES_V4);
      expect(await detectBackend(nsRunner(ns), 'auto')).toBe('nft');
    });
  });

  test('both hold rules: a plain UserError asking for --backend', async () => {
    await withNamespaces(1, async (ns) => {
      ns.exec('iptables-nft-restore', [], RULES_V4);
      ns.exec('ip6tables-legacy-restore', [], RULES_V6);
      let caught: unknown;
      try {
        await detectBackend(nsRunner(ns), 'auto');
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(UserError);
      const error = caught as MoatError;
      expect(error.code).toBe('backend-ambiguous');
      expect(error.exitCode).toBe(1);
      expect(error.message).toContain('both iptables backends hold rules');
      expect(error.message).toContain('--backend nft or --backend legacy');
      expect(error.message).toContain(
        'iptables-nft-save: 3 rules, 1 chain, policy filter/FORWARD DROP',
      );
      expect(error.message).toContain('ip6tables-legacy-save: 1 rule');
      // An explicit choice settles it without looking.
      expect(await detectBackend(nsRunner(ns), 'legacy')).toBe('legacy');
    });
  });

  test('neither holds rules: the backend `iptables -V` reports', async () => {
    const version = execFileSync('iptables', ['-V'], { encoding: 'utf8' });
    const expected = version.includes('nf_tables') ? 'nft' : 'legacy';
    await withNamespaces(1, async (ns) => {
      expect(await detectBackend(nsRunner(ns), 'auto')).toBe(expected);
      expect(legacyTables(ns, 'ipv4')).toEqual([]);
      expect(legacyTables(ns, 'ipv6')).toEqual([]);
    });
  });

  test('an explicit choice runs nothing', async () => {
    const ran: string[] = [];
    const runner = (command: string) => {
      ran.push(command);
      return Promise.reject(new Error('must not run'));
    };
    expect(await detectBackend(runner, 'nft')).toBe('nft');
    expect(await detectBackend(runner, 'legacy')).toBe('legacy');
    expect(ran).toEqual([]);
  });
});

describeWith(
  ['root', 'ip', 'iptables', 'iptables-legacy', 'ipset'],
  'readLiveNetfilter (kernel)',
  () => {
    test('nft: both families, filter by default, more tables on request', async () => {
      await withNamespaces(1, async (ns) => {
        ns.exec('iptables-nft-restore', [], RULES_V4);
        ns.exec('ip6tables-nft-restore', [], RULES_V6);
        const live = await readLiveNetfilter(nsRunner(ns), 'nft');
        expect(live.backend).toBe('nft');
        expect([...live.rulesets.ipv4.tables.keys()]).toEqual(['filter']);
        const user = live.rulesets.ipv4.tables.get('filter')!.chains.get('DOCKER-USER')!;
        expect(user.rules).toEqual([
          { spec: '-m comment --comment "moat:ab12" -j RETURN', moatId: 'ab12', target: 'RETURN' },
        ]);
        expect(live.rulesets.ipv6.tables.get('filter')!.chains.get('INPUT')!.rules).toEqual([
          { spec: '-s 2001:db8::1/128 -p tcp -m tcp --dport 22 -j ACCEPT', target: 'ACCEPT' },
        ]);
        expect(live.ipsets).toEqual(new Map());

        const withNat = await readLiveNetfilter(nsRunner(ns), 'nft', { tables: ['filter', 'nat'] });
        expect([...withNat.rulesets.ipv4.tables.keys()]).toEqual(['filter', 'nat']);
        expect(
          withNat.rulesets.ipv4.tables.get('nat')!.chains.get('POSTROUTING')!.rules,
        ).toHaveLength(1);
      });
    });

    test('legacy: a family with no tables is empty, and reading it creates none', async () => {
      await withNamespaces(1, async (ns) => {
        ns.exec('iptables-legacy-restore', [], RULES_V4);
        const live = await readLiveNetfilter(nsRunner(ns), 'legacy', { tables: ['filter', 'raw'] });
        expect(live.rulesets.ipv6).toEqual({ family: 'ipv6', tables: new Map() });
        expect([...live.rulesets.ipv4.tables.keys()]).toEqual(['filter']);
        expect(legacyTables(ns, 'ipv6')).toEqual([]);
        expect(legacyTables(ns, 'ipv4')).not.toContain('raw');
      });
    });

    test('real ipset save output: hash:ip with timeouts and comments, hash:net, inet6', async () => {
      await withNamespaces(1, async (ns) => {
        const ipset = (...args: string[]) => ns.exec('ipset', args);
        ipset('create', 'moat-web', 'hash:ip', 'family', 'inet', 'timeout', '600', 'comment');
        ipset('add', 'moat-web', '10.9.0.1', 'comment', 'two words');
        ipset('add', 'moat-web', '10.9.0.2', 'timeout', '30');
        ipset('create', 'office', 'hash:net', 'family', 'inet6', 'counters');
        ipset('add', 'office', '2001:db8:7::/48');
        ipset('create', 'ports', 'bitmap:port', 'range', '1-1024');
        const live = await readLiveNetfilter(nsRunner(ns), 'nft');
        expect([...live.ipsets.keys()].sort()).toEqual(['moat-web', 'office']);
        const web = live.ipsets.get('moat-web')!;
        expect(web).toMatchObject({ type: 'hash:ip', family: 'ipv4' });
        expect([...web.members].sort()).toEqual(['10.9.0.1', '10.9.0.2']);
        expect(web.options).toMatch(/^hashsize \d+ maxelem \d+ timeout 600 comment/);
        expect(live.ipsets.get('office')).toMatchObject({
          type: 'hash:net',
          family: 'ipv6',
          members: ['2001:db8:7::/48'],
        });
      });
    });

    const hasNft = spawnSync('sh', ['-c', 'command -v nft']).status === 0;
    (hasNft ? test : test.skip)(
      'a table written with nft that iptables cannot show: SaveParseError naming it',
      async () => {
        await withNamespaces(1, async (ns) => {
          // iptables-nft-save prints a notice on stdout and exits 0 for such a table.
          ns.exec(
            'nft',
            ['-f', '-'],
            'table ip filter {\n  chain INPUT { type filter hook input priority 0; policy accept; ' +
              'numgen random mod 2 vmap { 0 : accept, 1 : drop }; }\n}\n',
          );
          const reading = readLiveNetfilter(nsRunner(ns), 'nft');
          await expect(reading).rejects.toBeInstanceOf(SaveParseError);
          await expect(reading).rejects.toMatchObject({ table: 'filter', code: 'save-parse' });
          await expect(reading).rejects.toThrow(/nft list table ip filter/);
        });
      },
    );

    test('a failing save is a SubprocessError naming the command', async () => {
      await withNamespaces(1, async (ns) => {
        await expect(
          readLiveNetfilter(nsRunner(ns), 'nft', { tables: ['nosuch'] }),
        ).rejects.toBeInstanceOf(SubprocessError);
      });
    });
  },
);

test('toolFor names every program', () => {
  expect(toolFor('nft', 'ipv4', 'save')).toBe('iptables-nft-save');
  expect(toolFor('legacy', 'ipv6', 'restore')).toBe('ip6tables-legacy-restore');
});
