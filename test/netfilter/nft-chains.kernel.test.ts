/**
 * `nft -j list chains` against the real kernel: what plan, status and the evaluator read from nft
 * (readNftChains) equals what the whole `nft -j list ruleset` gives (what a snapshot keeps), on
 * a host holding iptables-nft's tables, Docker's nftables table, a user's native tables (one of
 * them in a table name iptables-nft uses) and a table without chains, which is the one difference.
 */
import { expect, test } from '@jest/globals';
import { parseNftJson } from '../../src/netfilter/parse-nft.js';
import { readNftChains } from '../../src/netfilter/read.js';
import { describeWith } from '../support/prereq.js';
import { load, nsRunner, withNamespaces } from './kernel-support.js';

/** iptables-nft's own tables: filter (FORWARD policy DROP), nat and mangle, with rules. */
const IPTABLES = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -p tcp -m tcp --dport 2368 -m comment --comment "moat:x" -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE
COMMIT
*mangle
:FORWARD DROP [0:0]
COMMIT
`;

/** Docker 29's table, a user's inet table and native `ip6 filter`, and a table of one set only. */
const NATIVE = `
table ip docker-bridges {
  chain filter-forward-in {
    oifname "docker0" tcp dport 2368 accept
  }
  chain filter-FORWARD {
    type filter hook forward priority filter; policy accept;
    jump filter-forward-in
  }
}
table inet user {
  chain forward {
    type filter hook forward priority 10; policy drop;
    ct state established accept
  }
}
table ip6 filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
  }
}
table inet sets-only {
  set blocked {
    type ipv4_addr; elements = { 192.0.2.1 }
  }
}
`;

describeWith(['root', 'ip', 'iptables', 'nft'], 'nft tables and base chains (kernel)', () => {
  test('list chains gives the tables and base chains the whole ruleset gives, but a chainless table', async () => {
    await withNamespaces(1, async (ns) => {
      load(ns, 'nft', 'ipv4', IPTABLES);
      ns.exec('nft', ['-f', '-'], NATIVE);
      const whole = parseNftJson(ns.exec('nft', ['-j', 'list', 'ruleset']));
      const chains = await readNftChains(nsRunner(ns));
      expect(chains?.baseChains).toEqual(whole.baseChains);
      expect(whole.tables).toContainEqual({ family: 'inet', name: 'sets-only' });
      expect(chains?.tables).toEqual(whole.tables.filter((t) => t.name !== 'sets-only'));
      // What the warnings read is there: policies, hooks and priorities of every table.
      expect(
        chains?.baseChains
          .filter((c) => c.hook === 'forward' && c.policy === 'drop')
          .map((c) => `${c.family} ${c.table} ${c.name} ${c.priority}`)
          .sort(),
      ).toEqual([
        'inet user forward 10',
        'ip filter FORWARD 0',
        'ip mangle FORWARD -150',
        'ip6 filter forward 0',
      ]);
    });
  });
});
