/**
 * Long-lived programs that tell `moat watch` when moat's objects may have changed, so that it
 * can look (and repair) within a second instead of at its next interval. Node has no netlink,
 * so each probe is a child process whose output is the signal; this module only starts them,
 * restarts them when they die, and stops them.
 *
 * - nft backend: the kernel's change notifications. `xtables-monitor -e`, which ships with
 *   iptables itself, under `stdbuf -oL` because it buffers its output when not writing to a
 *   terminal: 50 ms from a change to its line and no measurable CPU, at 50,000 rules as at
 *   none. It exits on a rule it cannot parse: one written with nft (Docker 29's nftables
 *   backend, firewalld), and in 1.8.9 (Debian 12) every IPv6 rule with `-p tcp` or `-p udp`,
 *   which moat writes. It is restarted, and its exit counts as a change of what it watched.
 *   So one runs per family (`-4`, `-6`), each dropping the other's events before parsing them:
 *   IPv6 rules then never stop the IPv4 monitor, and an exit costs a look at one family's
 *   chains, not all of moat's. `nft monitor ruleset` only where xtables-monitor or stdbuf is
 *   missing: it re-reads the ruleset for every event, which at 50,000 rules took 2 s of CPU
 *   and more than 4 s to print one.
 * - legacy backend: no notifications; src/host/legacy-probe.ts polls the tables' size.
 * - ipset: no notifications either; src/host/ipset-probe.ts asks an interactive `ipset -` for
 *   the sets' headers and prints a line when moat's change.
 *
 * Every line or exit is only a hint (src/netfilter/parse-monitor.ts says of what): watch then
 * reads those of moat's objects and compares.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { IptablesBackend } from '../netfilter/model.js';
import {
  ANYTHING,
  nftMonitorHint,
  withinFamily,
  xtablesMonitorHint,
  type ChangeHint,
} from '../netfilter/parse-monitor.js';
import { FAMILIES, type Family } from '../policy/model.js';
import { ipsetProbeProgram } from './ipset-probe.js';
import { legacyProbeCommand, legacyProbeHints } from './legacy-probe.js';

export interface ProbeListener {
  /** Something may have changed; `source` names the probe, `hints` say what. */
  readonly changed: (source: string, hints: readonly ChangeHint[]) => void;
  /** A probe cannot run, or keeps dying. */
  readonly warn: (message: string) => void;
}

export interface Probe {
  /** What runs, for the log: `nft monitor`, `xtables-monitor`, `legacy probe`, `ipset`. */
  readonly name: string;
  stop(): Promise<void>;
}

export interface ProbeCommand {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** What a line of output says was changed; undefined: nothing that matters. Default: anything. */
  readonly hint?: (line: string) => ChangeHint | undefined;
  /** What may have changed unseen while it was down (its exit, its restart). Default: anything. */
  readonly missed?: ChangeHint;
  /**
   * Whether a line ends one transaction's output (xtables-monitor's `NEWGEN:`). Where given,
   * hints are held until it comes: a table rewritten at once prints for a second or more, and
   * a look at what its first lines named would plan against half of it.
   */
  readonly ends?: (line: string) => boolean;
}

/** Whether an executable `name` is on PATH. */
export function onPath(name: string, path = process.env.PATH ?? ''): boolean {
  return path
    .split(delimiter)
    .filter((dir) => dir !== '')
    .some((dir) => {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** `xtables-monitor -e` for one family, whose every line and exit concern that family only. */
function xtablesMonitor(family: Family): ProbeCommand {
  return {
    name: 'xtables-monitor',
    command: 'stdbuf',
    args: ['-oL', 'xtables-monitor', '-e', family === 'ipv4' ? '-4' : '-6'],
    hint: (line) => withinFamily(xtablesMonitorHint(line), family),
    missed: { kind: 'family', family },
    ends: (line) => line.startsWith('NEWGEN:'),
  };
}

/**
 * How the changes of a backend's rules are noticed: the programs to run (all of them), or
 * undefined when none can run here.
 */
export function ruleProbeCommands(
  backend: IptablesBackend,
  options: { find?: (name: string) => boolean; arch?: string; legacyPollMs: number },
): readonly ProbeCommand[] | undefined {
  const find = options.find ?? ((name: string) => onPath(name));
  if (backend === 'nft') {
    if (find('xtables-monitor') && find('stdbuf')) return FAMILIES.map(xtablesMonitor);
    if (find('nft')) {
      return [
        {
          name: 'nft monitor',
          command: 'nft',
          args: ['monitor', 'ruleset'],
          hint: nftMonitorHint,
          ends: (line) => line.startsWith('# new generation'),
        },
      ];
    }
    return undefined;
  }
  if (!find('perl')) return undefined;
  const probe = legacyProbeCommand(options.arch ?? process.arch, options.legacyPollMs);
  return probe === undefined
    ? undefined
    : [{ name: 'legacy probe', ...probe, hint: legacyProbeHints() }];
}

const FIRST_RESTART_MS = 100;
// Short: no change is noticed while a probe is down, and xtables-monitor dies on every rule
// Docker's nftables backend writes. Long enough not to spin on a probe that cannot run.
const MAX_RESTART_MS = 2000;
/** A child that ran this long before dying is restarted at once again. */
const HEALTHY_MS = 2000;
/** After a restart, the new child has subscribed well within this; then look once more. */
const RESUBSCRIBE_MS = 50;

interface Supervision {
  /** Each chunk of the child's stdout. */
  readonly onOutput: (chunk: string) => void;
  /** The child ended: a line it left unfinished will never be. */
  readonly onExit?: () => void;
}

/**
 * The probe's command line, under `setpriv --pdeathsig KILL` (util-linux) where there is one: a
 * moat killed with SIGKILL then takes its probes with it instead of leaving them to run on.
 */
function dyingWithMoat(spec: ProbeCommand): [string, string[]] {
  // A command that is not there is spawned as is, so its failure to start is reported as such.
  if (!onPath('setpriv') || !onPath(spec.command)) return [spec.command, [...spec.args]];
  return ['setpriv', ['--pdeathsig', 'KILL', '--', spec.command, ...spec.args]];
}

function env(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C' };
}

/**
 * Runs `spec` until stopped; restarts it when it exits (after 100 ms, doubling up to 2 s while
 * it keeps dying young). An exit is reported as a change: events may have been lost meanwhile.
 */
export function supervise(
  spec: ProbeCommand,
  listener: ProbeListener,
  supervision: Supervision,
): Probe {
  let child: ChildProcessWithoutNullStreams | undefined;
  let stopped = false;
  let delay = FIRST_RESTART_MS;
  let restartTimer: NodeJS.Timeout | undefined;
  let resubscribed: NodeJS.Timeout | undefined;
  let exited: Promise<void> = Promise.resolve();
  const missed = spec.missed ?? ANYTHING;

  const start = (restart: boolean): void => {
    const startedAt = Date.now();
    const [command, args] = dyingWithMoat(spec);
    const proc = spawn(command, args, { env: env(), stdio: 'pipe' });
    child = proc;
    let stderr = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => {
      supervision.onOutput(chunk);
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-500);
    });
    proc.stdin.on('error', () => undefined);
    let failedToStart = false;
    proc.on('error', (error: NodeJS.ErrnoException) => {
      failedToStart = true;
      listener.warn(`${spec.name}: could not start ${spec.command}: ${error.message}`);
    });
    exited = new Promise((resolve) => {
      proc.on('close', (code, signal) => {
        resolve();
        if (child === proc) child = undefined;
        supervision.onExit?.();
        if (stopped || failedToStart) return;
        const why = signal === null ? `exit code ${code ?? '?'}` : signal;
        const last = stderr.trim().split('\n').at(-1) ?? '';
        listener.changed(spec.name, [missed]);
        delay = Date.now() - startedAt > HEALTHY_MS ? FIRST_RESTART_MS : delay;
        if (delay >= 1000) {
          listener.warn(
            `${spec.name} stopped (${why}${last === '' ? '' : `: ${last}`}); restarting in ${delay / 1000}s`,
          );
        }
        restartTimer = setTimeout(() => {
          start(true);
        }, delay);
        delay = Math.min(delay * 2, MAX_RESTART_MS);
      });
    });
    if (restart) {
      resubscribed = setTimeout(() => {
        listener.changed(spec.name, [missed]);
      }, RESUBSCRIBE_MS);
    }
  };
  start(false);

  return {
    name: spec.name,
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(restartTimer);
      clearTimeout(resubscribed);
      const proc = child;
      if (proc === undefined) return;
      const killer = setTimeout(() => proc.kill('SIGKILL'), 2000);
      proc.stdin.end();
      proc.kill('SIGTERM');
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Hints held for a transaction's end are given anyway after this long without a line. */
const HOLD_QUIET_MS = 500;

/** Runs a probe whose lines of output tell of changes. */
export function startProbe(spec: ProbeCommand, listener: ProbeListener): Probe {
  const hint = spec.hint ?? (() => ANYTHING);
  const ends = spec.ends;
  let partial = '';
  let held: ChangeHint[] = [];
  let quiet: NodeJS.Timeout | undefined;
  const release = (): void => {
    clearTimeout(quiet);
    if (held.length > 0) listener.changed(spec.name, held);
    held = [];
  };
  const probe = supervise(spec, listener, {
    onOutput: (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const h = hint(line);
        if (h !== undefined) held.push(h);
        if (ends?.(line) === true) release();
      }
      if (ends === undefined) release();
      else if (held.length > 0) {
        clearTimeout(quiet);
        quiet = setTimeout(release, HOLD_QUIET_MS);
      }
    },
    // xtables-monitor dies mid-line (` EVENT: -6 -t filter `): never glue that to the next run's.
    onExit: () => {
      partial = '';
      release();
    },
  });
  return {
    name: probe.name,
    async stop(): Promise<void> {
      clearTimeout(quiet);
      held = [];
      await probe.stop();
    },
  };
}

/** Runs every program of `specs` as one probe, named after the first. */
export function startProbes(specs: readonly ProbeCommand[], listener: ProbeListener): Probe {
  const probes = specs.map((spec) => startProbe(spec, listener));
  return {
    name: specs[0]?.name ?? 'none',
    async stop(): Promise<void> {
      await Promise.all(probes.map((p) => p.stop()));
    },
  };
}

/**
 * How changes of moat's ipsets are noticed (src/host/ipset-probe.ts); undefined without perl
 * or stdbuf.
 */
export function ipsetProbeCommand(
  pollMs: number,
  find: (name: string) => boolean = (name) => onPath(name),
): ProbeCommand | undefined {
  if (!find('perl') || !find('stdbuf') || !find('ipset')) return undefined;
  return { name: 'ipset', ...ipsetProbeProgram(pollMs), hint: () => ({ kind: 'sets' }) };
}
