/**
 * watch's change probes against the real kernel, each run inside a throwaway namespace: what
 * tells of a change (and stays quiet otherwise) for nft monitor, xtables-monitor, the legacy
 * probe and the ipset probe; and how a probe that dies is restarted and stopped.
 */
import { describe, expect, test } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ipsetProbeCommand,
  ruleProbeCommands,
  startProbe,
  startProbes,
  supervise,
  type Probe,
  type ProbeCommand,
} from '../../src/host/change-probes.js';
import { legacyProbeHints } from '../../src/host/legacy-probe.js';
import { xtablesMonitorHint, type ChangeHint } from '../../src/netfilter/parse-monitor.js';
import { NetNs } from '../support/netns.js';
import { describeWith } from '../support/prereq.js';

/** Records the changes a probe reports. */
class Recorder {
  readonly changes: string[] = [];
  readonly hints: ChangeHint[] = [];
  readonly warnings: string[] = [];
  readonly listener = {
    changed: (source: string, hints: readonly ChangeHint[]) => {
      this.changes.push(source);
      this.hints.push(...hints);
    },
    warn: (message: string) => this.warnings.push(message),
  };

  /** Waits (bounded) for the count of changes to go past `n`. */
  async more(n: number, timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.changes.length <= n && Date.now() < deadline) await sleep(10);
    return this.changes.length > n;
  }
}

/** `spec`, run inside `ns`. */
function inside(ns: NetNs, spec: ProbeCommand): ProbeCommand {
  return { ...spec, command: 'ip', args: ['netns', 'exec', ns.name, spec.command, ...spec.args] };
}

/** Runs `body` with a fresh namespace and a probe stopped afterwards, even when it throws. */
async function withProbe(
  start: (ns: NetNs, recorder: Recorder) => Probe,
  body: (ns: NetNs, recorder: Recorder) => Promise<void>,
): Promise<void> {
  const ns = NetNs.create('pr');
  const recorder = new Recorder();
  let probe: Probe | undefined;
  try {
    probe = start(ns, recorder);
    await sleep(300); // subscribed
    await body(ns, recorder);
  } finally {
    await probe?.stop();
    ns.destroy();
  }
}

/** Asserts that `change` is reported, and that nothing is reported while nothing changes. */
async function reportsOnly(ns: NetNs, recorder: Recorder, change: () => void): Promise<void> {
  await sleep(300); // the last change's output has all arrived
  const quiet = recorder.changes.length;
  await sleep(600);
  expect(recorder.changes.length).toBe(quiet);
  change();
  expect(await recorder.more(quiet)).toBe(true);
}

/** A new chain, a rule added, a flush (IPv4) and a new chain (IPv6): each reported alone. */
async function reportsNftChanges(ns: NetNs, recorder: Recorder): Promise<void> {
  await reportsOnly(ns, recorder, () => ns.exec('iptables-nft', ['-N', 'MOAT-FORWARD']));
  await reportsOnly(ns, recorder, () =>
    ns.exec('iptables-nft', ['-A', 'MOAT-FORWARD', '-j', 'RETURN']),
  );
  await reportsOnly(ns, recorder, () => ns.exec('iptables-nft', ['-F', 'MOAT-FORWARD']));
  await reportsOnly(ns, recorder, () => ns.exec('ip6tables-nft', ['-N', 'MOAT-INPUT']));
}

describe('ruleProbeCommands', () => {
  const has =
    (...names: string[]) =>
    (name: string) =>
      names.includes(name);
  test('nft: xtables-monitor under stdbuf, one per family, else nft monitor, else none', () => {
    const monitors = ruleProbeCommands('nft', {
      find: has('nft', 'xtables-monitor', 'stdbuf'),
      legacyPollMs: 250,
    });
    expect(monitors).toMatchObject([
      { name: 'xtables-monitor', command: 'stdbuf', args: ['-oL', 'xtables-monitor', '-e', '-4'] },
      { name: 'xtables-monitor', command: 'stdbuf', args: ['-oL', 'xtables-monitor', '-e', '-6'] },
    ]);
    // What one family's monitor missed, or did not understand, is that family's.
    const v6 = monitors?.[1];
    expect(v6?.missed).toEqual({ kind: 'family', family: 'ipv6' });
    expect(v6?.hint?.(' EVENT: something new in a later release')).toEqual({
      kind: 'family',
      family: 'ipv6',
    });
    expect(
      ruleProbeCommands('nft', { find: has('nft', 'xtables-monitor'), legacyPollMs: 250 }),
    ).toMatchObject([{ name: 'nft monitor', command: 'nft', args: ['monitor', 'ruleset'] }]);
    expect(ruleProbeCommands('nft', { find: has('xtables-monitor'), legacyPollMs: 250 })).toBe(
      undefined,
    );
  });

  test('legacy: the perl probe where perl is and the architecture is known', () => {
    const probe = ruleProbeCommands('legacy', {
      find: has('perl'),
      arch: 'arm64',
      legacyPollMs: 200,
    })?.[0];
    expect(probe?.command).toBe('perl');
    expect(probe?.args.slice(-2)).toEqual(['200', '209']);
    expect(ruleProbeCommands('legacy', { find: has(), legacyPollMs: 200 })).toBeUndefined();
    expect(
      ruleProbeCommands('legacy', { find: has('perl'), arch: 'mips', legacyPollMs: 200 }),
    ).toBeUndefined();
  });
});

describe('legacyProbeHints', () => {
  test('the family whose answer changed; anything at first, or when both changed', () => {
    const hint = legacyProbeHints();
    const v4 = 'ipv4:14,0,0,0,0,0,0,0,0,0,0,5,8904';
    expect(hint(`${v4} ipv6:none`)).toEqual({ kind: 'anything' });
    expect(hint(`${v4} ipv6:14,0,0,0,0,0,0,0,0,0,0,3,616`)).toEqual({
      kind: 'family',
      family: 'ipv6',
    });
    expect(hint(`${v4} ipv6:14,0,0,0,0,0,0,0,0,0,0,3,616`)).toBeUndefined();
    expect(hint('ipv4:none ipv6:none')).toEqual({ kind: 'anything' });
    expect(hint('ipv4:error=1 ipv6:none')).toEqual({ kind: 'family', family: 'ipv4' });
  });
});

describeWith(['root', 'ip', 'iptables', 'nft'], 'xtables-monitor probe (kernel)', () => {
  const specs = ruleProbeCommands('nft', { legacyPollMs: 250 });
  const start = (ns: NetNs, recorder: Recorder): Probe => {
    if (specs === undefined) throw new Error('no xtables-monitor or stdbuf');
    return startProbes(
      specs.map((spec) => inside(ns, spec)),
      recorder.listener,
    );
  };

  test('reports rule and chain changes in both families at once, nothing otherwise', async () => {
    await withProbe(start, async (ns, recorder) => {
      await reportsNftChanges(ns, recorder);
      expect(new Set(recorder.changes)).toEqual(new Set(['xtables-monitor']));
    });
  });

  test("says which chain changed; other tables' changes, even native nft ones, are no change", async () => {
    await withProbe(start, async (ns, recorder) => {
      ns.exec(
        'nft',
        ['-f', '-'],
        'table ip t {\n chain c {\n  tcp dport { 80, 443 } accept\n }\n}\n',
      );
      ns.exec('iptables-nft', ['-t', 'nat', '-N', 'DOCKER']);
      await sleep(600);
      expect(recorder.changes).toEqual([]);
      await reportsOnly(ns, recorder, () => ns.exec('ip6tables-nft', ['-N', 'MOAT-INPUT']));
      expect(recorder.hints).toContainEqual({
        kind: 'chain',
        family: 'ipv6',
        chain: 'MOAT-INPUT',
      });
    });
  });

  test('an IPv6 port rule, which stops xtables-monitor 1.8.9, costs an IPv6 look only', async () => {
    await withProbe(start, async (ns, recorder) => {
      ns.exec('iptables-nft', ['-N', 'DOCKER-USER']); // the IPv4 table exists from here on
      ns.exec('ip6tables-nft', ['-N', 'MOAT-INPUT']);
      await sleep(300);
      recorder.hints.length = 0;
      await reportsOnly(ns, recorder, () =>
        ns.exec('ip6tables-nft', ['-A', 'MOAT-INPUT', '-p', 'tcp', '--dport', '80', '-j', 'DROP']),
      );
      await sleep(500); // a monitor that died has been restarted by now
      expect(recorder.hints.some((h) => h.kind === 'anything')).toBe(false);
      expect(recorder.hints.every((h) => h.kind !== 'chain' || h.family === 'ipv6')).toBe(true);
      expect(recorder.hints.some((h) => 'family' in h && h.family === 'ipv4')).toBe(false);
      // The IPv4 monitor still names the chain that changed, and the IPv6 monitor's last words
      // before it died (` EVENT: -6 -t filter `, no newline) are not read as a new change.
      recorder.hints.length = 0;
      await reportsOnly(ns, recorder, () => ns.exec('iptables-nft', ['-N', 'MOAT-FORWARD']));
      expect(recorder.hints).toEqual([{ kind: 'chain', family: 'ipv4', chain: 'MOAT-FORWARD' }]);
    });
  });
});

describeWith(['root', 'ip', 'iptables', 'nft'], 'nft monitor probe (kernel)', () => {
  test('reports iptables-nft changes, nothing otherwise', async () => {
    const spec = ruleProbeCommands('nft', {
      find: (name) => name !== 'xtables-monitor', // as on a host without it
      legacyPollMs: 250,
    })?.[0];
    expect(spec?.name).toBe('nft monitor');
    if (spec === undefined) return;
    await withProbe(
      (ns, r) => startProbe(inside(ns, spec), r.listener),
      async (ns, recorder) => {
        await reportsNftChanges(ns, recorder);
      },
    );
  });
});

describeWith(['root', 'ip', 'iptables-legacy'], 'legacy probe (kernel)', () => {
  const spec = ruleProbeCommands('legacy', { legacyPollMs: 100 })?.[0];

  test('reports a flush, a deleted rule and a new chain in either family; nothing otherwise', async () => {
    if (spec === undefined) throw new Error(`no legacy probe for ${process.arch}`);
    await withProbe(
      (ns, r) => {
        ns.exec(
          'iptables-legacy-restore',
          [],
          '*filter\n:MOAT-FORWARD - [0:0]\n-A MOAT-FORWARD -j RETURN\n-A FORWARD -j MOAT-FORWARD\nCOMMIT\n',
        );
        ns.exec('ip6tables-legacy', ['-N', 'MOAT-INPUT']);
        return startProbe(inside(ns, spec), r.listener);
      },
      async (ns, recorder) => {
        await reportsOnly(ns, recorder, () => ns.exec('iptables-legacy', ['-F', 'MOAT-FORWARD']));
        await reportsOnly(ns, recorder, () => ns.exec('iptables-legacy', ['-D', 'FORWARD', '1']));
        recorder.hints.length = 0;
        await reportsOnly(ns, recorder, () => ns.exec('ip6tables-legacy', ['-N', 'MOAT-X']));
        // the line before says which family changed: an IPv6 look only
        expect(recorder.hints).toEqual([{ kind: 'family', family: 'ipv6' }]);
      },
    );
  });

  test('never creates a legacy table that is not there', async () => {
    if (spec === undefined) throw new Error(`no legacy probe for ${process.arch}`);
    await withProbe(
      (ns, r) => startProbe(inside(ns, spec), r.listener),
      async (ns, recorder) => {
        await sleep(500);
        expect(ns.exec('cat', ['/proc/net/ip_tables_names'])).toBe('');
        expect(ns.exec('cat', ['/proc/net/ip6_tables_names'])).toBe('');
        expect(recorder.changes).toEqual(['legacy probe']); // its first answer, then nothing
        // once the table appears, its changes are seen
        await reportsOnly(ns, recorder, () => ns.exec('iptables-legacy', ['-N', 'MOAT-FORWARD']));
      },
    );
  });
});

describeWith(['root', 'ip', 'ipset'], 'ipset probe (kernel)', () => {
  test("reports a flush, a destroy and a re-create of moat's sets, not other sets' changes", async () => {
    await withProbe(
      (ns, r) => {
        ns.exec('ipset', ['create', 'moat-office', 'hash:net']);
        ns.exec('ipset', ['add', 'moat-office', '198.51.100.0/24']);
        ns.exec('ipset', ['create', 'fail2ban', 'hash:ip']);
        const spec = ipsetProbeCommand(50);
        if (spec === undefined) throw new Error('no perl, stdbuf or ipset');
        return startProbe(inside(ns, spec), r.listener);
      },
      async (ns, recorder) => {
        const before = recorder.changes.length;
        ns.exec('ipset', ['add', 'fail2ban', '192.0.2.9']);
        ns.exec('ipset', ['create', 'other', 'hash:ip']);
        await sleep(400);
        expect(recorder.changes.length).toBe(before);
        await reportsOnly(ns, recorder, () => ns.exec('ipset', ['flush', 'moat-office']));
        await reportsOnly(ns, recorder, () => ns.exec('ipset', ['destroy', 'moat-office']));
        await reportsOnly(ns, recorder, () =>
          ns.exec('ipset', ['create', 'moat-office', 'hash:net']),
        );
        expect(new Set(recorder.changes)).toEqual(new Set(['ipset']));
      },
    );
  });
});

describe('startProbe', () => {
  const printing = (script: string): ProbeCommand => ({
    name: 'printer',
    command: 'sh',
    args: ['-c', `${script}; exec sleep 5`],
    hint: xtablesMonitorHint,
    ends: (line) => line.startsWith('NEWGEN:'),
  });

  test("a transaction's hints come at once, when its end is printed", async () => {
    const recorder = new Recorder();
    const probe = startProbe(
      printing(
        'echo " EVENT: -4 -t filter -D INPUT -j MOAT-INPUT"; sleep 0.4; ' +
          'echo " EVENT: -4 -t filter -X MOAT-INPUT"; echo "NEWGEN: GENID=2 PID=1 NAME=x"',
      ),
      recorder.listener,
    );
    try {
      await sleep(250);
      expect(recorder.changes).toEqual([]); // half of the transaction: nothing yet
      expect(await recorder.more(0)).toBe(true);
      expect(recorder.changes).toEqual(['printer']);
      expect(recorder.hints).toEqual([
        { kind: 'chain', family: 'ipv4', chain: 'INPUT' },
        { kind: 'chain', family: 'ipv4', chain: 'MOAT-INPUT' },
      ]);
    } finally {
      await probe.stop();
    }
  });

  test('held hints are given anyway when the end does not come', async () => {
    const recorder = new Recorder();
    const probe = startProbe(
      printing('echo " EVENT: -4 -t filter -F MOAT-FORWARD"'),
      recorder.listener,
    );
    try {
      expect(await recorder.more(0)).toBe(true);
      expect(recorder.hints).toEqual([{ kind: 'chain', family: 'ipv4', chain: 'MOAT-FORWARD' }]);
    } finally {
      await probe.stop();
    }
  });
});

describe('supervise', () => {
  test('a program that keeps dying is restarted, each death a change; stop ends it', async () => {
    const recorder = new Recorder();
    const probe = supervise(
      { name: 'flaky', command: 'sh', args: ['-c', 'sleep 0.1; exit 3'] },
      recorder.listener,
      { onOutput: () => undefined },
    );
    try {
      // deaths after 0.1 s, restarts after 0.1, 0.2, 0.4 s: at least three deaths in 1.5 s
      await sleep(1500);
      expect(recorder.changes.filter((c) => c === 'flaky').length).toBeGreaterThanOrEqual(3);
    } finally {
      await probe.stop();
    }
    const after = recorder.changes.length;
    await sleep(1000);
    expect(recorder.changes.length).toBe(after);
  });

  test('a program that cannot start is reported once, not restarted', async () => {
    const recorder = new Recorder();
    const probe = supervise(
      { name: 'missing', command: 'moat-no-such-program', args: [] },
      recorder.listener,
      { onOutput: () => undefined },
    );
    await sleep(500);
    await probe.stop();
    expect(recorder.warnings).toHaveLength(1);
    expect(recorder.warnings[0]).toContain('could not start moat-no-such-program');
    expect(recorder.changes).toEqual([]);
  });
});
