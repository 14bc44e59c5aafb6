/** Which of moat's objects a look reads, from the change notices' hints. */
import { describe, expect, test } from '@jest/globals';
import { diff } from '../../src/plan/diff.js';
import {
  concerns,
  EVERYTHING,
  guardedChains,
  nextListings,
  ScopeBuilder,
  scopeDesired,
} from '../../src/watch/scope.js';
import { appliedLive, dockerHost, ghostWithOffice } from '../support/builders.js';

const desired = ghostWithOffice();

describe('scope', () => {
  test("hints about moat's chains, hooks and sets concern it; Docker's own chains do not", () => {
    expect(concerns({ kind: 'chain', family: 'ipv4', chain: 'MOAT-FORWARD' }, desired)).toBe(true);
    expect(concerns({ kind: 'chain', family: 'ipv6', chain: 'DOCKER-USER' }, desired)).toBe(true);
    expect(concerns({ kind: 'chain', family: 'ipv4', chain: 'DOCKER' }, desired)).toBe(false);
    expect(concerns({ kind: 'chain', family: 'ipv4', chain: 'MOAT-OTHER' }, desired)).toBe(false);
    expect(concerns({ kind: 'sets' }, desired)).toBe(true);
    expect(concerns({ kind: 'anything' }, desired)).toBe(true);
    expect(concerns({ kind: 'family', family: 'ipv6' }, desired)).toBe(true);
    const noChains = {
      ...desired,
      families: { ...desired.families, ipv6: { ...desired.families.ipv6, chains: [], jumps: [] } },
    };
    expect(concerns({ kind: 'family', family: 'ipv6' }, noChains)).toBe(false);
    const noSets = { ...desired, ipsets: [] };
    expect(concerns({ kind: 'sets' }, noSets)).toBe(false);
  });

  test('a look reads what the hints named, everything after `anything` or no hint', () => {
    const builder = new ScopeBuilder();
    expect(builder.take()).toBe(EVERYTHING);
    builder.add({ kind: 'chain', family: 'ipv4', chain: 'DOCKER-USER' });
    const scope = builder.take();
    expect(scope.all).toBe(false);
    const part = scopeDesired(desired, scope);
    expect(part.families.ipv4.chains).toEqual([]);
    expect(part.families.ipv4.jumps.map((j) => j.hook)).toEqual(['DOCKER-USER']);
    expect(part.families.ipv6.jumps).toEqual([]);
    expect(part.ipsets).toEqual([]);
    builder.add({ kind: 'sets' });
    builder.add({ kind: 'anything' });
    expect(builder.take()).toBe(EVERYTHING);
    expect(scopeDesired(desired, EVERYTHING)).toBe(desired);
  });

  test("a family's hint reads all of moat's chains and hooks in that family, nothing else", () => {
    const builder = new ScopeBuilder();
    builder.add({ kind: 'family', family: 'ipv6' });
    builder.add({ kind: 'chain', family: 'ipv4', chain: 'MOAT-FORWARD' });
    const scope = builder.take();
    expect(scope.all).toBe(false);
    const part = scopeDesired(desired, scope);
    expect(part.families.ipv6).toEqual(desired.families.ipv6);
    expect(part.families.ipv4.chains.map((c) => c.name)).toEqual(['MOAT-FORWARD']);
    expect(part.families.ipv4.jumps).toEqual([]);
    expect(part.ipsets).toEqual([]);
    // and the next look starts afresh
    expect(builder.take()).toBe(EVERYTHING);
  });

  test('a chain that matches on a set brings the set into the look: it may be gone too', () => {
    const src = desired.families.ipv4.chains.find((c) => c.name.startsWith('MOAT-SRC-'))!;
    expect(src.rules.some((r) => r.spec.includes('--match-set moat-office'))).toBe(true);
    const builder = new ScopeBuilder();
    builder.add({ kind: 'chain', family: 'ipv4', chain: src.name });
    const part = scopeDesired(desired, builder.take());
    expect(part.families.ipv4.chains.map((c) => c.name)).toEqual([src.name]);
    expect(part.ipsets.map((s) => s.name)).toEqual(['moat-office']);
  });

  test('the part of a host a scope covers plans nothing for what it did not read', () => {
    const builder = new ScopeBuilder();
    builder.add({ kind: 'chain', family: 'ipv4', chain: 'MOAT-INPUT' });
    const part = scopeDesired(desired, builder.take());
    // only MOAT-INPUT was read, and it is empty: the plan refills it and touches nothing else
    const live = appliedLive(desired, dockerHost());
    const chains = new Map([['MOAT-INPUT', { name: 'MOAT-INPUT', rules: [] }]]);
    const read = {
      ...live,
      rulesets: {
        ipv4: {
          family: 'ipv4' as const,
          tables: new Map([['filter', { name: 'filter', chains }]]),
        },
        ipv6: { family: 'ipv6' as const, tables: new Map() },
      },
      ipsets: new Map(),
    };
    const steps = diff(part, read).steps;
    expect(steps.map((s) => [s.kind, 'chain' in s ? s.chain : ''])).toEqual([
      ['update-chain', 'MOAT-INPUT'],
    ]);
  });
});

describe('nextListings', () => {
  const names = guardedChains(desired, 'ipv4');
  const src = desired.families.ipv4.chains.find((c) => c.name.startsWith('MOAT-SRC-'))!.name;

  /** Lists round after round, `there` saying which chains exist; returns the rounds. */
  const walk = (there: (name: string) => boolean, within = names): string[][] => {
    const listed = new Map<string, boolean>();
    const rounds: string[][] = [];
    for (let next = nextListings(desired, 'ipv4', within, listed); next.length > 0;) {
      rounds.push([...next].sort());
      for (const name of next) listed.set(name, there(name));
      next = nextListings(desired, 'ipv4', within, listed);
    }
    return rounds;
  };

  test('from the hooks down: every chain, when all are there', () => {
    const rounds = walk(() => true);
    expect(rounds[0]).toEqual(['DOCKER-USER', 'INPUT']);
    expect(rounds[1]).toEqual(['MOAT-FORWARD', 'MOAT-INPUT']);
    expect(rounds.flat().sort()).toEqual([...names].sort());
    // a chain is listed as soon as one chain that jumps to it is there
    expect(rounds[2]).toContain(src);
  });

  test('a table rewritten without moat: the hooks and their targets, nothing below', () => {
    const rounds = walk((name) => !name.startsWith('MOAT-'));
    expect(rounds).toEqual([
      ['DOCKER-USER', 'INPUT'],
      ['MOAT-FORWARD', 'MOAT-INPUT'],
    ]);
  });

  test('one parent there is enough; chains named alone are listed at once', () => {
    const rounds = walk((name) => name !== 'MOAT-FORWARD');
    expect(rounds.flat()).toContain(src); // through MOAT-INPUT
    expect(rounds.flat()).not.toContain('MOAT-INGRESS'); // only MOAT-FORWARD jumps there
    expect(walk(() => true, ['MOAT-INGRESS', src])).toEqual([['MOAT-INGRESS'], [src]]);
    expect(walk(() => false, ['MOAT-INGRESS', src])).toEqual([['MOAT-INGRESS']]);
    expect(walk(() => false, [src])).toEqual([[src]]);
  });
});
