import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { parseIpsetSave, parseIpsetSaveDetailed } from '../../src/netfilter/parse-ipset.js';
import { SaveParseError } from '../../src/netfilter/parse-save.js';

// Captured with `ipset save` (v7.17) in a namespace.
const sample = readFileSync(
  join(import.meta.dirname, '../fixtures/netfilter/sample.ipset-save'),
  'utf8',
);

function expectError(text: string, line: number): SaveParseError {
  let caught: unknown;
  try {
    parseIpsetSave(text);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(SaveParseError);
  const error = caught as SaveParseError;
  expect(error.line).toBe(line);
  expect(error.message).toContain(`ipset save output, line ${line}:`);
  return error;
}

describe('parseIpsetSave', () => {
  test('real ipset save output: types, families, options, members without their options', () => {
    const parsed = parseIpsetSaveDetailed(sample);
    const sets = parsed.sets;
    expect([...sets.keys()]).toEqual(['s1', 's2', 's6', 's7', 's8', 'we"ird', 'moat-v6']);
    expect(sets.get('s1')).toEqual({
      name: 's1',
      type: 'hash:ip',
      family: 'ipv4',
      options: 'hashsize 1024 maxelem 65536 timeout 300 comment bucketsize 12 initval 0x2612d2a1',
      members: ['10.0.0.2'], // printed as `10.0.0.2 timeout 153`
    });
    expect(sets.get('s2')).toMatchObject({
      type: 'hash:net',
      family: 'ipv6',
      members: ['2001:db8:1::1', '2001:db8::/64'], // counters dropped
    });
    // bitmap:ip is IPv4 only and prints no family.
    expect(sets.get('s6')).toMatchObject({ family: 'ipv4', options: 'range 10.0.0.0-10.0.0.255' });
    expect(sets.get('s7')!.members).toEqual(['10.0.0.0/8,tcp:80']);
    expect(sets.get('moat-v6')).toMatchObject({ family: 'ipv6', members: ['2001:db8::5'] });
    // Sets with no address family are named apart, not guessed.
    expect([...parsed.withoutFamily]).toEqual([
      ['s3', 'bitmap:port'],
      ['s4', 'list:set'],
    ]);
  });

  test('a member comment with spaces stays out of the member', () => {
    const text =
      'create x hash:ip family inet hashsize 1024 maxelem 65536 comment\n' +
      'add x 10.0.0.1 comment "two words"\n';
    expect(parseIpsetSave(text).get('x')!.members).toEqual(['10.0.0.1']);
  });

  test('empty output: no sets', () => {
    expect(parseIpsetSave('')).toEqual(new Map());
  });

  test.each([
    ['add before create', 'add x 10.0.0.1\n', 1],
    ['add without member', 'create x hash:ip family inet\nadd x\n', 2],
    ['bad family', 'create x hash:ip family ipx\n', 1],
    ['created twice', 'create x hash:ip family inet\ncreate x hash:ip family inet\n', 2],
    ['no type', 'create x\n', 1],
    ['unknown verb', 'create x hash:ip family inet\nflush x\n', 2],
  ])('%s', (_why, text, line) => {
    expectError(text, line);
  });

  test('truncated and fuzzed output never crashes', () => {
    fc.assert(
      fc.property(fc.nat(sample.length), fc.string({ maxLength: 40 }), (at, junk) => {
        for (const text of [
          sample.slice(0, at),
          `${sample.slice(0, at)}${junk}\n${sample.slice(at)}`,
        ]) {
          try {
            parseIpsetSave(text);
          } catch (error) {
            expect(error).toBeInstanceOf(SaveParseError);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
