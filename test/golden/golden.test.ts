/**
 * Golden cases: test/fixtures/golden/<case>/ holds the inputs (firewall.yaml and state/, a host
 * snapshot as `moat snapshot` writes it); expected/ holds the text plan, the JSON plan and the
 * restore input. UPDATE_GOLDEN=1 rewrites the expectations; a file in
 * expected/ that no case produces fails the run.
 */
import { describe, expect, test } from '@jest/globals';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makePlan } from '../../src/app/plan.js';
import { renderRestore } from '../../src/apply/render-restore.js';
import { renderPlanJson } from '../../src/plan/render-json.js';
import { renderPlanText } from '../../src/plan/render-text.js';
import { bufferContext } from '../support/app-context.js';

const ROOT = new URL('../fixtures/golden/', import.meta.url).pathname;
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const OUTPUTS = ['plan.txt', 'plan.json', 'restore.txt'];

/** Exactly what `moat plan -f <case>/firewall.yaml --snapshot <case>/state` plans. */
async function outputs(dir: string): Promise<Record<string, string>> {
  const { ctx } = bufferContext();
  const { plan } = await makePlan(ctx, {
    file: join(dir, 'firewall.yaml'),
    snapshot: join(dir, 'state'),
    backend: 'auto',
  });
  const scripts = renderRestore(plan);
  const restore = [
    ['ipset restore (before)', scripts.ipsetBefore],
    ['iptables-restore --noflush', scripts.families.ipv4],
    ['ip6tables-restore --noflush', scripts.families.ipv6],
    ['ipset restore (after)', scripts.ipsetAfter],
  ]
    .map(([title, body]) => `### ${title ?? ''}\n${body ?? '(nothing)\n'}`)
    .join('\n');
  return {
    'plan.txt': renderPlanText(plan, { color: false }),
    'plan.json': renderPlanJson(plan),
    'restore.txt': restore,
  };
}

const cases = readdirSync(ROOT, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

describe('golden plans', () => {
  test('there are cases', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  for (const name of cases) {
    test(name, async () => {
      const dir = join(ROOT, name);
      const expectedDir = join(dir, 'expected');
      const actual = await outputs(dir);
      if (UPDATE) {
        mkdirSync(expectedDir, { recursive: true });
        for (const [file, text] of Object.entries(actual))
          writeFileSync(join(expectedDir, file), text);
      }
      for (const [file, text] of Object.entries(actual)) {
        const path = join(expectedDir, file);
        expect(existsSync(path) ? readFileSync(path, 'utf8') : `<missing ${path}>`).toBe(text);
      }
      const orphans = readdirSync(expectedDir).filter((f) => !OUTPUTS.includes(f));
      expect(orphans).toEqual([]);
    });
  }
});
