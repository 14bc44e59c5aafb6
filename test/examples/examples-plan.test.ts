/**
 * Every example validates without a diagnostic and plans against the bundled snapshot (a real
 * Docker 20.10 host holding the containers the examples name) without a warning: what a new
 * user runs first says nothing that needs fixing. Notes (ports open by the declared default)
 * are allowed.
 */
import { describe, expect, test } from '@jest/globals';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePlan } from '../../src/app/plan.js';
import { bufferContext } from '../support/app-context.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SNAPSHOT = join(ROOT, 'examples/snapshot-docker-20.10');
/** The CI example is written for the Docker 28.5.2 snapshot its README plans against. */
const SNAPSHOT_OF: Readonly<Record<string, string>> = {
  ci: join(ROOT, 'examples/snapshot-docker-28.5.2'),
};
const examples = readdirSync(join(ROOT, 'examples'))
  .filter((name) => existsSync(join(ROOT, 'examples', name, 'firewall.yaml')))
  .sort();

describe('the examples against the bundled snapshot', () => {
  test('there are examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(5);
  });

  for (const name of examples) {
    test(`${name}: validates and plans with no warning, and changes something`, async () => {
      const { ctx, err } = bufferContext();
      const { plan } = await makePlan(ctx, {
        file: join(ROOT, 'examples', name, 'firewall.yaml'),
        snapshot: SNAPSHOT_OF[name] ?? SNAPSHOT,
        backend: 'auto',
      });
      expect(err()).toBe('');
      expect(plan.warnings.filter((w) => w.level !== 'note')).toEqual([]);
      expect(plan.steps.length).toBeGreaterThan(0);
    });
  }
});
