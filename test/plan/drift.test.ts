/** The words a run record and watch's log use for what had drifted. */
import { describe, expect, test } from '@jest/globals';
import { diff } from '../../src/plan/diff.js';
import { describeStep, driftedObjects } from '../../src/plan/drift.js';
import type { LiveChain } from '../../src/netfilter/model.js';
import { appliedLive, dockerHost, editChain, ghostWithOffice } from '../support/builders.js';

const desired = ghostWithOffice();
const flushed = (c: LiveChain): LiveChain => ({ ...c, rules: [] });
const applied = appliedLive(desired, dockerHost());

describe('drift words', () => {
  test('a flushed DOCKER-USER and a flushed set: the jump to add and the set to update', () => {
    const flushedSet = {
      ...applied,
      ipsets: new Map([...applied.ipsets].map(([n, s]) => [n, { ...s, members: [] }])),
    };
    const plan = diff(desired, editChain(flushedSet, 'DOCKER-USER', flushed));
    expect(driftedObjects(plan)).toEqual(['update-set moat-office', 'add-jump ipv4 DOCKER-USER']);
  });

  test('a flushed MOAT-INPUT names the chain and the family', () => {
    expect(driftedObjects(diff(desired, editChain(applied, 'MOAT-INPUT', flushed)))).toEqual([
      'update-chain ipv4 MOAT-INPUT',
    ]);
  });

  test('a first apply is no drift, though every step has words', () => {
    const plan = diff(desired, dockerHost());
    expect(driftedObjects(plan)).toEqual([]);
    expect(plan.steps.map(describeStep)).toContain('create-chain ipv6 MOAT-FORWARD');
    expect(plan.steps.map(describeStep)).toContain('create-set moat-office');
  });
});
