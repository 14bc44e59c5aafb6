/**
 * watch's quick repair against the real kernel, both iptables backends, in a throwaway
 * namespace: a repair that reads only the chains a change notice named and then fails (another
 * program undoes it before the verification reads it back) rolls back only what it read. Found
 * on a real Docker host (test/e2e/watch-repair.test.ts, the fight): the rollback used to compare
 * that partial read with a full one and delete every chain and set of moat's it had not read,
 * leaving the host open until the next repair.
 */
import { afterEach, beforeEach, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspectAndRepair } from '../../src/app/repair.js';
import { applyPlan, ApplyFailedError } from '../../src/apply/apply.js';
import { compile } from '../../src/compile/compile.js';
import { hostFacts } from '../../src/compile/host-facts.js';
import type { CommandRunner } from '../../src/core/runner.js';
import type { IptablesBackend } from '../../src/netfilter/model.js';
import { readLiveNetfilter } from '../../src/netfilter/read.js';
import { diff } from '../../src/plan/diff.js';
import { bufferContext } from '../support/app-context.js';
import { container, group, inventory, managedIpset, policy, tcp } from '../support/builders.js';
import { NetNs } from '../support/netns.js';
import { describeWith } from '../support/prereq.js';
import { fixture, nsRunner } from '../netfilter/kernel-support.js';

const DOCKER_V4 = fixture('docker-20.10-live.iptables-save');
const DOCKER_V6 =
  '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -j RETURN\nCOMMIT\n';

const GHOST = policy(
  [
    group('ghost', {
      ingress: [{ ports: [tcp(2368)], from: [{ kind: 'host' }, { kind: 'ipset', set: 'office' }] }],
    }),
  ],
  { ipsets: new Map([managedIpset('office', 'hash:net', ['198.51.100.128/25'])]) },
);
const INVENTORY = inventory(container('ghost', '172.30.0.3', [{ host: 2368 }]));

for (const backend of ['nft', 'legacy'] as const satisfies readonly IptablesBackend[]) {
  describeWith(
    ['root', 'ip', 'ipset', backend === 'nft' ? 'iptables' : 'iptables-legacy'],
    `watch's quick repair on ${backend}`,
    () => {
      let ns: NetNs;
      let work: string;
      beforeEach(() => {
        ns = NetNs.create('rp');
        ns.exec(`iptables-${backend}-restore`, [], DOCKER_V4);
        ns.exec(`ip6tables-${backend}-restore`, [], DOCKER_V6);
        work = mkdtempSync(join(tmpdir(), 'moat-repair-'));
      });
      afterEach(() => {
        ns.destroy();
        rmSync(work, { recursive: true, force: true });
      });

      /** Everything the host holds, as saved, without comments: what "unchanged" means. */
      const saved = (): string =>
        [
          ns.exec(`iptables-${backend}-save`, ['-t', 'filter']),
          ns.exec(`ip6tables-${backend}-save`, ['-t', 'filter']),
          ns.exec('ipset', ['save']),
        ]
          .join('\n')
          .split('\n')
          .filter((l) => !l.startsWith('#'))
          .join('\n');

      test('a repair of one hook that does not hold rolls back that hook only, not the rest of moat', async () => {
        const real = nsRunner(ns);
        const live = await readLiveNetfilter(real, backend);
        const desired = compile(GHOST, INVENTORY, hostFacts(live));
        await applyPlan(diff(desired, live), {
          runner: real,
          backend,
          readLive: () => readLiveNetfilter(real, backend),
          replan: (after) => diff(desired, after),
        });
        // Someone deletes moat's jump from DOCKER-USER, and again right after moat puts it back.
        const jumpSpec = ns
          .exec(`iptables-${backend}`, ['-S', 'DOCKER-USER'])
          .split('\n')
          .find((l) => l.endsWith('-j MOAT-FORWARD'));
        expect(jumpSpec).toBeDefined();
        // Through sh: the spec quotes its comment.
        const undo = (): void => {
          ns.exec('sh', ['-c', `iptables-${backend} ${(jumpSpec ?? '').replace(/^-A/, '-D')}`]);
        };
        undo();
        const tampered = saved();
        expect(ns.exec(`iptables-${backend}`, ['-S', 'DOCKER-USER'])).not.toContain('MOAT-FORWARD');
        let undone = false;
        const fighting: CommandRunner = async (command, args, input, options) => {
          const result = await real(command, args, input, options);
          if (!undone && command === `iptables-${backend}-restore` && !args.includes('--test')) {
            undone = true;
            undo();
          }
          return result;
        };
        const { ctx } = bufferContext({ runner: fighting });
        const repair = inspectAndRepair(
          ctx,
          { lockFile: join(work, 'lock'), lockTimeoutMs: 0, stateDir: join(work, 'state') },
          { desired, backend, tableRules: {} },
          // What xtables-monitor's notice named: DOCKER-USER only.
          {
            all: false,
            families: new Set(),
            chains: { ipv4: new Set(['DOCKER-USER']), ipv6: new Set() },
            sets: false,
          },
          () => true,
        );
        await expect(repair).rejects.toBeInstanceOf(ApplyFailedError);
        await expect(repair).rejects.toThrow(/verification failed[\s\S]*the host is as it was/);
        expect(undone).toBe(true);
        // As before the repair: moat's chains and sets all there, only the jump missing.
        expect(saved()).toBe(tampered);
      });
    },
  );
}
