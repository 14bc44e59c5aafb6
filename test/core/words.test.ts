/** Counts in messages agree with their nouns: "1 member", "2 members", "1 step". */
import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePlan } from '../../src/app/plan.js';
import { plural } from '../../src/core/words.js';
import { renderPlanText } from '../../src/plan/render-text.js';
import { bufferContext } from '../support/app-context.js';

const SNAPSHOT = fileURLToPath(new URL('../../examples/snapshot-docker-20.10', import.meta.url));

describe('plural', () => {
  test('one, many, none, and irregular nouns', () => {
    expect(plural(1, 'member')).toBe('1 member');
    expect(plural(2, 'member')).toBe('2 members');
    expect(plural(0, 'step')).toBe('0 steps');
    expect(plural(1, 'entry', 'entries')).toBe('1 entry');
    expect(plural(3, 'entry', 'entries')).toBe('3 entries');
  });

  test('a plan creating a set of one address says "1 member"', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-words-'));
    try {
      const file = join(dir, 'firewall.yaml');
      writeFileSync(
        file,
        'version: 1\nipsets:\n  office:\n    entries: [198.51.100.7]\ncontainers:\n  ghost:\n    ingress:\n      - ports: [2368]\n        from: [ipset:office]\n',
      );
      const { plan } = await makePlan(bufferContext().ctx, {
        file,
        snapshot: SNAPSHOT,
        backend: 'auto',
      });
      expect(renderPlanText(plan, { color: false })).toContain(
        '+ ipset moat-office (hash:net, ipv4, 1 member)',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
