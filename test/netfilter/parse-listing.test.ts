/** parseListing: `iptables -S` output parses to the same table parseSave gives for the save. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import type { LiveRuleset, LiveTable } from '../../src/netfilter/model.js';
import {
  ListingParser,
  parseListing,
  parseListingDetailed,
  parseSave,
  SaveParseError,
} from '../../src/netfilter/parse-save.js';
import { arbRuleset, plain } from './generators.js';

const FIXTURES = join(import.meta.dirname, '../fixtures/netfilter');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const saveFixtures = readdirSync(FIXTURES).filter((f) => f.endsWith('.iptables-save'));

/** The `-S` listing iptables prints for a table: `-P`/`-N` lines, then the rules in order. */
function listingOf(table: LiveTable): string {
  const lines: string[] = [];
  for (const chain of table.chains.values()) {
    lines.push(
      chain.policy === undefined ? `-N ${chain.name}` : `-P ${chain.name} ${chain.policy}`,
    );
  }
  for (const chain of table.chains.values()) {
    for (const rule of chain.rules) {
      lines.push(rule.spec === '' ? `-A ${chain.name}` : `-A ${chain.name} ${rule.spec}`);
    }
  }
  return lines.map((l) => `${l}\n`).join('');
}

function only(ruleset: LiveRuleset, name: string): LiveRuleset {
  const table = ruleset.tables.get(name);
  return { family: ruleset.family, tables: new Map(table === undefined ? [] : [[name, table]]) };
}

function listingError(text: string, line: number): SaveParseError {
  let caught: unknown;
  try {
    parseListing(text, 'ipv4');
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(SaveParseError);
  const error = caught as SaveParseError;
  expect(error.line).toBe(line);
  expect(error.message).toMatch(new RegExp(`(iptables -S output, )?line ${line}\\b`));
  return error;
}

describe('ListingParser fed piece by piece, as a program prints', () => {
  test('any cut of the output, even inside a line or a CRLF, parses as the whole', () => {
    const table = parseSave(fixture('docker-20.10-live.iptables-save'), 'ipv4').tables.get(
      'filter',
    ) as LiveTable;
    const text = listingOf(table);
    const whole = parseListingDetailed(text, 'ipv4', 'filter');
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.nat({ max: text.length }), { maxLength: 40 }),
        fc.boolean(),
        (cuts, crlf) => {
          const input = crlf ? text.replace(/\n/g, '\r\n') : text;
          const points = [...cuts.map((c) => Math.min(c, input.length))].sort((a, b) => a - b);
          const parser = new ListingParser('ipv4', 'filter');
          let from = 0;
          for (const at of [...points, input.length]) {
            parser.push(input.slice(from, at));
            from = at;
          }
          expect(parser.end()).toEqual(whole);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a malformed line is reported with its number, wherever the pieces were cut', () => {
    const parser = new ListingParser('ipv4', 'filter');
    parser.push('-P INPUT ACCEPT\n-N DOC');
    parser.push('KER\n-A DOCKER -j RETURN\n-X bro');
    expect(() => {
      parser.push('ken\n');
    }).toThrow(/line 4\b/);
  });
});

describe('parseListing', () => {
  test('built-in chains come as -P, user chains as -N; rules as in save', () => {
    const text = [
      '-P INPUT ACCEPT',
      '-P FORWARD DROP',
      '-N DOCKER-USER',
      '-A FORWARD -j DOCKER-USER',
      '-A DOCKER-USER -m comment --comment "moat:ab12" -j MOAT-FORWARD',
      '-A DOCKER-USER -j RETURN',
      '',
    ].join('\n');
    const save = [
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':FORWARD DROP [0:0]',
      ':DOCKER-USER - [0:0]',
      '-A FORWARD -j DOCKER-USER',
      '-A DOCKER-USER -m comment --comment "moat:ab12" -j MOAT-FORWARD',
      '-A DOCKER-USER -j RETURN',
      'COMMIT',
      '',
    ].join('\n');
    const listed = parseListing(text, 'ipv4');
    expect(listed).toEqual(parseSave(save, 'ipv4'));
    // Map order too: chains in the order listed.
    expect([...listed.tables.get('filter')!.chains.keys()]).toEqual([
      'INPUT',
      'FORWARD',
      'DOCKER-USER',
    ]);
    expect('policy' in listed.tables.get('filter')!.chains.get('DOCKER-USER')!).toBe(false);
    expect(listed.tables.get('filter')!.chains.get('DOCKER-USER')!.rules[0]).toEqual({
      spec: '-m comment --comment "moat:ab12" -j MOAT-FORWARD',
      moatId: 'ab12',
      target: 'MOAT-FORWARD',
    });
  });

  test('another table is named as asked; one chain listed alone is a one-chain table', () => {
    const nat = parseListing(
      '-P POSTROUTING ACCEPT\n-A POSTROUTING -j MASQUERADE\n',
      'ipv6',
      'nat',
    );
    expect([...nat.tables.keys()]).toEqual(['nat']);
    expect(nat.family).toBe('ipv6');
    const one = parseListing('-N MOAT-X\n-A MOAT-X -j RETURN\n', 'ipv4');
    expect([...one.tables.get('filter')!.chains.keys()]).toEqual(['MOAT-X']);
  });

  test('notices are kept, an incompatible table is an error naming it, CRLF is fine', () => {
    const parsed = parseListingDetailed(
      "# Table `filter' contains incompatible base-chains, use 'nft' tool to list them.\r\n" +
        '-P INPUT ACCEPT\r\n',
      'ipv4',
      'filter',
    );
    expect(parsed.warnings).toEqual([
      "Table `filter' contains incompatible base-chains, use 'nft' tool to list them.",
    ]);
    expect(parsed.ruleset.tables.get('filter')!.chains.get('INPUT')!.policy).toBe('ACCEPT');
    const error = listingError("# Table `filter' is incompatible, use 'nft' tool.\n", 1);
    expect(error.table).toBe('filter');
    expect(error.message).toContain('nft list table ip filter');
  });

  test.each([
    ['rule for an undeclared chain', '-P INPUT ACCEPT\n-A NOPE -j ACCEPT\n', 2],
    ['chain declared twice', '-N X\n-N X\n', 2],
    ['policy without a policy', '-P INPUT\n', 1],
    ['-N with extra words', '-N X Y\n', 1],
    ['save framing is not a listing', '*filter\n', 1],
    ['counters are not printed by -S', '-P INPUT ACCEPT\n[1:2] -A INPUT -j ACCEPT\n', 2],
    ['unterminated quote', '-N X\n-A X -m comment --comment "open -j ACCEPT\n', 2],
  ])('%s: a located SaveParseError', (_why, text, line) => {
    listingError(text, line);
  });

  test('only: just the named chains are kept (those that exist), in listing order', () => {
    const table = parseSave(fixture('docker-20.10-live.iptables-save'), 'ipv4').tables.get(
      'filter',
    )!;
    const only = new Set(['DOCKER-USER', 'FORWARD', 'NOPE']);
    const listed = parseListing(listingOf(table), 'ipv4', 'filter', only).tables.get('filter')!;
    expect([...listed.chains.keys()]).toEqual(['FORWARD', 'DOCKER-USER']);
    expect(listed.chains.get('FORWARD')).toEqual(table.chains.get('FORWARD'));
    expect(listed.chains.get('DOCKER-USER')).toEqual(table.chains.get('DOCKER-USER'));
    // A malformed line in a skipped chain's declaration is still an error.
    expect(() => parseListing('-N X Y\n', 'ipv4', 'filter', only)).toThrow(SaveParseError);
  });

  test.each(saveFixtures)('%s: the listing of each table parses as its save does', (name) => {
    const saved = parseSave(fixture(name), 'ipv4');
    for (const [tableName, table] of saved.tables) {
      const listed = parseListing(listingOf(table), 'ipv4', tableName);
      expect(listed).toEqual(only(saved, tableName));
      expect(plain(listed)).toEqual(plain(only(saved, tableName))); // chain order too
    }
  });

  test('generated rulesets: listing and save parse alike', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('ipv4' as const, 'ipv6' as const).chain(arbRuleset),
        (ruleset) => {
          for (const [tableName, table] of ruleset.tables) {
            expect(parseListing(listingOf(table), ruleset.family, tableName)).toEqual(
              only(ruleset, tableName),
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
