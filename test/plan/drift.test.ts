/** The words a run record and watch's log use for what had drifted. */
import { describe, expect, test } from '@jest/globals';
import { compile } from '../../src/compile/compile.js';
import { diff } from '../../src/plan/diff.js';
import { describeStep, driftedObjects } from '../../src/plan/drift.js';
import type { LiveNetfilter } from '../../src/netfilter/model.js';
import {
  appliedLive,
  container,
  dockerHost,
  group,
  inventory,
  managedIpset,
  policy,
  tcp,
} from '../support/builders.js';

const desired = compile(
  policy(
    [
      group('ghost', {
        ingress: [
          { ports: [tcp(2368)], from: [{ kind: 'host' }, { kind: 'ipset', set: 'office' }] },
        ],
      }),
    ],
    { ipsets: new Map([managedIpset('office', 'hash:net', ['198.51.100.0/24'])]) },
  ),
  inventory(container('ghost', '172.17.0.2', [{ host: 2368 }])),
);
const applied = appliedLive(desired, dockerHost());

function withChain(live: LiveNetfilter, name: string, rules: []): LiveNetfilter {
  const chains = new Map(live.rulesets.ipv4.tables.get('filter')?.chains);
  const chain = chains.get(name);
  if (chain === undefined) throw new Error(`no ${name}`);
  chains.set(name, { ...chain, rules });
  return {
    ...live,
    rulesets: {
      ...live.rulesets,
      ipv4: { family: 'ipv4', tables: new Map([['filter', { name: 'filter', chains }]]) },
    },
  };
}

describe('drift words', () => {
  test('a flushed DOCKER-USER and a flushed set: the jump to add and the set to update', () => {
    const flushedSet = {
      ...applied,
      ipsets: new Map([...applied.ipsets].map(([n, s]) => [n, { ...s, members: [] }])),
    };
    const plan = diff(desired, withChain(flushedSet, 'DOCKER-USER', []));
    expect(driftedObjects(plan)).toEqual(['update-set moat-office', 'add-jump ipv4 DOCKER-USER']);
  });

  test('a flushed MOAT-INPUT names the chain and the family', () => {
    expect(driftedObjects(diff(desired, withChain(applied, 'MOAT-INPUT', [])))).toEqual([
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
