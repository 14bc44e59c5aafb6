/**
 * Round trips through the real kernel, for both backends: load, save, parse, render, load the
 * rendered form into another namespace, save again: the same rules.
 */
import { expect, test } from '@jest/globals';
import fc from 'fast-check';
import type { IptablesBackend } from '../../src/netfilter/model.js';
import { toolFor } from '../../src/netfilter/backend.js';
import { parseSave } from '../../src/netfilter/parse-save.js';
import { renderSave } from '../../src/netfilter/render-save.js';
import type { Family } from '../../src/policy/model.js';
import type { NetNs } from '../support/netns.js';
import { describeWith } from '../support/prereq.js';
import { arbRuleset, plain } from './generators.js';
import { fixture, load, onlyTables, saveFixtures, withNamespaces } from './kernel-support.js';

const BACKENDS: readonly IptablesBackend[] = ['nft', 'legacy'];

function save(ns: NetNs, backend: IptablesBackend, family: Family, args: string[] = []): string {
  return ns.exec(toolFor(backend, family, 'save'), args);
}

describeWith(
  ['root', 'ip', 'iptables', 'iptables-legacy', 'ipset'],
  'netfilter round trips (kernel)',
  () => {
    for (const backend of BACKENDS) {
      test.each(saveFixtures)(
        `${backend}: %s survives load → save → render → load → save`,
        async (name) => {
          const text = fixture(name);
          await withNamespaces(2, (first, second) => {
            load(first, backend, 'ipv4', text);
            const saved = parseSave(save(first, backend, 'ipv4'), 'ipv4');
            // The fixtures are in save form already: the kernel gives back the same rules.
            const original = parseSave(text, 'ipv4');
            expect(plain(onlyTables(saved, original.tables.keys()))).toEqual(plain(original));

            load(second, backend, 'ipv4', renderSave(saved));
            const again = parseSave(save(second, backend, 'ipv4'), 'ipv4');
            expect(plain(again)).toEqual(plain(saved));
          });
        },
      );

      test(`${backend}: the rewriting quirks captured in the fixtures still hold`, async () => {
        await withNamespaces(1, (ns) => {
          load(ns, backend, 'ipv4', fixture('quirks.input.rules'));
          const live = parseSave(save(ns, backend, 'ipv4', ['-c']), 'ipv4');
          const captured = parseSave(fixture(`quirks.${backend}.iptables-save-c`), 'ipv4');
          expect(plain(live)).toEqual(plain(captured));
        });
      });

      for (const family of ['ipv4', 'ipv6'] as const) {
        test(`${backend} ${family}: generated rulesets (moat-style rules, comments) come back unchanged`, async () => {
          await fc.assert(
            fc.asyncProperty(arbRuleset(family), async (ruleset) => {
              await withNamespaces(1, (ns) => {
                load(ns, backend, family, renderSave(ruleset));
                const saved = parseSave(save(ns, backend, family), family);
                expect(plain(onlyTables(saved, ruleset.tables.keys()))).toEqual(plain(ruleset));
                expect(onlyTables(saved, ruleset.tables.keys())).toEqual(ruleset);
              });
            }),
            { numRuns: Number(process.env.MOAT_KERNEL_RUNS ?? 20) },
          );
        });
      }
    }
  },
);
