/**
 * Drop counters and drop logging against the real kernel, both iptables backends, in throwaway
 * namespaces: a client in one namespace is dropped by moat's rules in another (the docker-proxy
 * path, INPUT), over IPv4 and IPv6. The counters moat reads are the DROP rule's; they survive an
 * apply that edits the same chain and start again when the rule itself changes; the NFLOG rule
 * before the DROP reaches ulogd2 on both backends.
 */
import { afterEach, beforeEach, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { applyPlan, type ApplyEnvironment } from '../../src/apply/apply.js';
import { compile } from '../../src/compile/compile.js';
import { hostFacts } from '../../src/compile/host-facts.js';
import type { DesiredState } from '../../src/compile/model.js';
import { readRuleCounters } from '../../src/netfilter/counters.js';
import { readLiveNetfilter } from '../../src/netfilter/read.js';
import { diff } from '../../src/plan/diff.js';
import { dropChains, dropReport } from '../../src/plan/drops.js';
import type { Family, Policy } from '../../src/policy/model.js';
import { container, group, inventory, policy, tcp } from '../support/builders.js';
import { NetNs } from '../support/netns.js';
import { describeWith } from '../support/prereq.js';
import { nsRunner } from './kernel-support.js';

const inv = inventory(container('ghost', '172.17.0.2', [{ host: 2368 }]));
const HOOKS =
  '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n';
const SERVER = { ipv4: '192.0.2.1', ipv6: '2001:db8:7::1' };
const CLIENT = { ipv4: '192.0.2.2', ipv6: '2001:db8:7::2' };

const hostOnly = (extra: { log?: boolean; also?: number; from?: string } = {}): Policy =>
  policy(
    [
      group('ghost', {
        ingress: [
          {
            ports: [tcp(2368)],
            from: [
              { kind: 'host' },
              ...(extra.from === undefined
                ? []
                : [{ kind: 'cidr', block: { family: 'ipv4', cidr: extra.from } } as const]),
            ],
            ...(extra.log === undefined ? {} : { log: extra.log }),
          },
          ...(extra.also === undefined
            ? []
            : [{ ports: [tcp(extra.also)], from: [{ kind: 'host' as const }] }]),
        ],
      }),
    ],
    { logging: { group: 9, limit: { count: 20, per: 'minute' } } },
  );

for (const backend of ['nft', 'legacy'] as const) {
  describeWith(
    ['root', 'ip', 'ipset', 'curl', 'ulogd', backend === 'nft' ? 'iptables' : 'iptables-legacy'],
    `drop counters and logging on ${backend}`,
    () => {
      let server: NetNs;
      let client: NetNs;
      let dir: string;
      let ulogd: ChildProcess | undefined;

      beforeEach(() => {
        server = NetNs.create('ds');
        client = NetNs.create('dc');
        dir = mkdtempSync(join(tmpdir(), 'moat-counters-'));
        server.exec('ip', [
          'link',
          'add',
          'vs0',
          'type',
          'veth',
          'peer',
          'name',
          'vc0',
          'netns',
          client.name,
        ]);
        for (const [ns, dev, a] of [
          [server, 'vs0', SERVER],
          [client, 'vc0', CLIENT],
        ] as const) {
          ns.exec('ip', ['addr', 'add', `${a.ipv4}/24`, 'dev', dev]);
          ns.exec('ip', ['addr', 'add', `${a.ipv6}/64`, 'dev', dev, 'nodad']);
          ns.exec('ip', ['link', 'set', dev, 'up']);
        }
        server.exec(`iptables-${backend}-restore`, [], HOOKS);
        server.exec(`ip6tables-${backend}-restore`, [], HOOKS);
      });
      afterEach(async () => {
        if (ulogd?.exitCode === null) {
          ulogd.kill('SIGTERM');
          await new Promise((resolve) => ulogd?.once('exit', resolve));
        }
        ulogd = undefined;
        client.destroy();
        server.destroy();
        rmSync(dir, { recursive: true, force: true });
      });

      const env = (p: Policy): ApplyEnvironment => ({
        runner: nsRunner(server),
        backend,
        readLive: () => readLiveNetfilter(nsRunner(server), backend),
        replan: (live) => diff(compile(p, inv, hostFacts(live)), live),
      });
      const apply = async (p: Policy): Promise<DesiredState> => {
        const live = await readLiveNetfilter(nsRunner(server), backend);
        const desired = compile(p, inv, hostFacts(live));
        await applyPlan(diff(desired, live), env(p), live);
        const after = await readLiveNetfilter(nsRunner(server), backend);
        expect(diff(compile(p, inv, hostFacts(after)), after).steps).toEqual([]);
        return desired;
      };
      /** Packets moat counted for ghost's rule, per family. */
      const ghostDrops = async (desired: DesiredState): Promise<Record<Family, number>> => {
        const read = async (family: Family) =>
          readRuleCounters(nsRunner(server), backend, family, dropChains(desired, family));
        const report = dropReport(desired, { ipv4: await read('ipv4'), ipv6: await read('ipv6') });
        const of = (family: Family) =>
          report.rules.find((r) => r.rule === 'containers.ghost.ingress[0]' && r.family === family)
            ?.packets ?? -1;
        return { ipv4: of('ipv4'), ipv6: of('ipv6') };
      };
      const knock = (family: Family): void => {
        const url =
          family === 'ipv4' ? `http://${SERVER.ipv4}:2368/` : `http://[${SERVER.ipv6}]:2368/`;
        client.run('curl', ['-s', '-g', '--connect-timeout', '1', '-m', '1', url]);
      };

      test('a dropped client raises the DROP rule’s counters; an edit of the chain keeps them; a changed rule starts again', async () => {
        const desired = await apply(hostOnly());
        expect(await ghostDrops(desired)).toEqual({ ipv4: 0, ipv6: 0 });
        knock('ipv4');
        const afterV4 = await ghostDrops(desired);
        expect(afterV4.ipv4).toBeGreaterThan(0);
        expect(afterV4.ipv6).toBe(0);
        knock('ipv6');
        const afterV6 = await ghostDrops(desired);
        expect(afterV6.ipv6).toBeGreaterThan(0);
        expect(afterV6.ipv4).toBe(afterV4.ipv4);

        // Another rule in the same chain (MOAT-INPUT): ghost's DROP keeps its counters.
        const edited = await apply(hostOnly({ also: 9000 }));
        expect(await ghostDrops(edited)).toEqual(afterV6);
        // Logging turned on: an NFLOG rule is inserted before the DROP, which keeps them too.
        const logged = await apply(hostOnly({ also: 9000, log: true }));
        expect(await ghostDrops(logged)).toEqual(afterV6);

        // ghost's rule gains an IPv4 source: its IPv4 DROP is a new rule (in a sources chain),
        // counting from zero; the IPv6 one is the same rule as before and keeps counting.
        const changed = await apply(hostOnly({ also: 9000, from: '198.51.100.0/24' }));
        expect(await ghostDrops(changed)).toEqual({ ipv4: 0, ipv6: afterV6.ipv6 });
      });

      test('the NFLOG rule reaches ulogd2, in both families, with moat’s prefix', async () => {
        const desired = await apply(hostOnly({ log: true }));
        const log = join(dir, 'drops.log');
        const conf = join(dir, 'ulogd.conf');
        const plugins = '/usr/lib/x86_64-linux-gnu/ulogd';
        writeFileSync(
          conf,
          [
            '[global]',
            `logfile="${join(dir, 'ulogd.log')}"`,
            ...[
              'inppkt_NFLOG',
              'raw2packet_BASE',
              'filter_IFINDEX',
              'filter_IP2STR',
              'filter_PRINTPKT',
              'output_LOGEMU',
            ].map((p) => `plugin="${plugins}/ulogd_${p}.so"`),
            'stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU',
            '[log1]',
            'group=9',
            '[emu1]',
            `file="${log}"`,
            'sync=1',
            '',
          ].join('\n'),
        );
        ulogd = spawn('ip', ['netns', 'exec', server.name, 'ulogd', '-c', conf], {
          stdio: 'ignore',
        });
        const ulogdLog = join(dir, 'ulogd.log');
        for (let i = 0; i < 100; i++) {
          if (existsSync(ulogdLog) && readFileSync(ulogdLog, 'utf8').includes('main loop')) break;
          await sleep(100);
        }
        knock('ipv4');
        knock('ipv6');
        const lines = (): string[] =>
          existsSync(log)
            ? readFileSync(log, 'utf8')
                .split('\n')
                .filter((l) => l.includes('moat-drop '))
            : [];
        for (let i = 0; i < 50 && lines().length < 2; i++) await sleep(100);
        const input = desired.families.ipv4.chains.find((c) => c.name === 'MOAT-INPUT');
        const dropId = input?.rules.find((r) => r.spec.includes('--dport 2368 -j DROP'))?.id ?? '';
        expect(
          lines().some(
            (l) =>
              l.includes(`moat-drop ${dropId} ghost.ingress[0] `) &&
              l.includes(`SRC=${CLIENT.ipv4} `),
          ),
        ).toBe(true);
        expect(lines().some((l) => l.includes(`SRC=${CLIENT.ipv6} `))).toBe(true);
      }, 30_000);
    },
  );
}
