/**
 * `iptables -S` against the real kernel, both backends: for every fixture loaded into a
 * namespace, each table's listing parses to exactly what its iptables-save output parses to;
 * chains listed one by one equal the same chains of the full read; a missing chain is absent.
 */
import { expect, test } from '@jest/globals';
import fc from 'fast-check';
import { iptablesFor, toolFor } from '../../src/netfilter/backend.js';
import type { IptablesBackend } from '../../src/netfilter/model.js';
import { parseListing, parseSave } from '../../src/netfilter/parse-save.js';
import { readFilterChains, readIpsetsNamed, readLiveNetfilter } from '../../src/netfilter/read.js';
import { renderSave } from '../../src/netfilter/render-save.js';
import type { Family } from '../../src/policy/model.js';
import type { NetNs } from '../support/netns.js';
import { describeWith } from '../support/prereq.js';
import { arbRuleset, plain } from './generators.js';
import {
  fixture,
  load,
  nsRunner,
  onlyTables,
  saveFixtures,
  withNamespaces,
} from './kernel-support.js';

const BACKENDS: readonly IptablesBackend[] = ['nft', 'legacy'];

/** Every table the namespace holds: the save's parse must equal the listing's, table by table. */
function expectListingEqualsSave(ns: NetNs, backend: IptablesBackend, family: Family): number {
  const saved = parseSave(ns.exec(toolFor(backend, family, 'save'), []), family);
  for (const name of saved.tables.keys()) {
    const listed = parseListing(
      ns.exec(iptablesFor(backend, family), ['-t', name, '-S']),
      family,
      name,
    );
    const savedTable = onlyTables(saved, [name]);
    expect(listed).toEqual(savedTable);
    expect(plain(listed)).toEqual(plain(savedTable)); // chain order too
  }
  return saved.tables.size;
}

describeWith(
  ['root', 'ip', 'iptables', 'iptables-legacy', 'ipset'],
  'iptables -S listing (kernel)',
  () => {
    for (const backend of BACKENDS) {
      test.each([...saveFixtures, 'quirks.input.rules'])(
        `${backend}: %s lists as it saves`,
        async (name) => {
          await withNamespaces(1, (ns) => {
            load(ns, backend, 'ipv4', fixture(name));
            expect(expectListingEqualsSave(ns, backend, 'ipv4')).toBeGreaterThan(0);
          });
        },
      );

      for (const family of ['ipv4', 'ipv6'] as const) {
        test(`${backend} ${family}: generated rulesets (comments, moat rules) list as they save`, async () => {
          await fc.assert(
            fc.asyncProperty(arbRuleset(family), async (ruleset) => {
              await withNamespaces(1, (ns) => {
                load(ns, backend, family, renderSave(ruleset));
                expectListingEqualsSave(ns, backend, family);
              });
            }),
            { numRuns: Number(process.env.MOAT_KERNEL_RUNS ?? 10) },
          );
        });
      }

      test(`${backend}: readLiveNetfilter (by -S) equals the parsed save; chains alone equal it too`, async () => {
        await withNamespaces(1, async (ns) => {
          const v4 = fixture('v28.5.2-usernet-portmap.iptables-save');
          load(ns, backend, 'ipv4', v4);
          load(
            ns,
            backend,
            'ipv6',
            '*filter\n:FORWARD DROP [0:0]\n:MOAT-X - [0:0]\n-A MOAT-X -j RETURN\nCOMMIT\n',
          );
          const live = await readLiveNetfilter(nsRunner(ns), backend, {
            tables: ['filter', 'nat'],
          });
          for (const family of ['ipv4', 'ipv6'] as const) {
            // What the save-based read gave: one `save -t TABLE` per table it reads (legacy
            // skips a table the kernel has not registered).
            const tables = new Map(
              [...live.rulesets[family].tables.keys()].map((name) => [
                name,
                parseSave(
                  ns.exec(toolFor(backend, family, 'save'), ['-t', name]),
                  family,
                ).tables.get(name)!,
              ]),
            );
            expect(live.rulesets[family]).toEqual({ family, tables });
          }
          expect([...live.rulesets.ipv4.tables.keys()]).toEqual(['filter', 'nat']);
          const filter = live.rulesets.ipv4.tables.get('filter')!;
          const names = ['DOCKER-USER', 'FORWARD', 'DOCKER', 'MOAT-NOPE'];
          const chains = await readFilterChains(nsRunner(ns), backend, 'ipv4', names);
          expect([...chains.keys()]).toEqual(names);
          expect(chains.get('DOCKER-USER')).toEqual(filter.chains.get('DOCKER-USER'));
          expect(chains.get('FORWARD')).toEqual(filter.chains.get('FORWARD'));
          expect(chains.get('FORWARD')!.rules.length).toBeGreaterThan(0);
          expect(chains.get('DOCKER')).toEqual(filter.chains.get('DOCKER'));
          expect(chains.has('MOAT-NOPE')).toBe(true);
          expect(chains.get('MOAT-NOPE')).toBeUndefined();
          const v6 = await readFilterChains(nsRunner(ns), backend, 'ipv6', ['MOAT-X', 'FORWARD']);
          expect(v6.get('MOAT-X')).toEqual({
            name: 'MOAT-X',
            rules: [{ spec: '-j RETURN', target: 'RETURN' }],
          });
          expect(v6.get('FORWARD')).toEqual({ name: 'FORWARD', policy: 'DROP', rules: [] });
        });
      });
    }

    test('legacy: reading chains of a family with no legacy table creates none', async () => {
      await withNamespaces(1, async (ns) => {
        const chains = await readFilterChains(nsRunner(ns), 'legacy', 'ipv6', ['FORWARD']);
        expect(chains.get('FORWARD')).toBeUndefined();
        expect(ns.run('cat', ['/proc/net/ip6_tables_names']).stdout).toBe('');
      });
    });

    test('ipsets read by name: present, absent', async () => {
      await withNamespaces(1, async (ns) => {
        ns.exec('ipset', ['create', 'moat-a', 'hash:ip']);
        ns.exec('ipset', ['add', 'moat-a', '192.0.2.1']);
        const sets = await readIpsetsNamed(nsRunner(ns), ['moat-a', 'moat-gone']);
        expect(sets.get('moat-a')).toMatchObject({ type: 'hash:ip', members: ['192.0.2.1'] });
        expect(sets.has('moat-gone')).toBe(true);
        expect(sets.get('moat-gone')).toBeUndefined();
      });
    });
  },
);
