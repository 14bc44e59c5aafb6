/**
 * The CLI entry: parse arguments, call one use case, print, set the exit code. The only module
 * that touches `process`. Each command's use case is imported when that command runs, so a run
 * loads only the code it needs (docs/performance.md: start-up is most of a small run).
 */
import { createInterface } from 'node:readline/promises';
import { Command, CommanderError, Option } from 'commander';
import type { Context } from '../app/context.js';
import type { Io } from '../app/io.js';
import { TOOL_VERSION } from '../app/version.js';
import { createView, wantsColor, type ViewKind } from '../app/view.js';
import { ExitCode, UserError } from '../core/errors.js';
import { execRunner } from '../host/exec-runner.js';
import { DEFAULT_LOCK_PATH, parseDuration } from '../host/lock.js';
import { DEFAULT_STATE_DIR } from '../state/runs.js';

/** Standard input up to `maxBytes` + 1 bytes: enough to tell that it is too large. */
async function readStdin(maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buffer = chunk as Buffer;
    chunks.push(buffer);
    size += buffer.length;
    if (size > maxBytes) break;
  }
  return Buffer.concat(chunks).subarray(0, maxBytes + 1);
}

const io: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  interactive: process.stdin.isTTY && process.stdout.isTTY,
  ask: async (question) => {
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    try {
      return await rl.question(question);
    } finally {
      rl.close();
    }
  },
  readStdin,
};

interface Globals {
  color: boolean;
  debug?: boolean;
}

/** The options that choose the view: `--json` (a document) or `--log-format json` (lines). */
interface Output {
  json?: boolean;
  logFormat?: 'text' | 'json';
}

type LogFormat = 'text' | 'json';

/**
 * Renamed options: the old names keep working, hidden from help, with a note on stderr.
 * `old` and `now` are commander's attribute names; the flags are what the note says.
 */
const RENAMED = [
  { old: 'state', now: 'snapshot', flags: ['--state', '--snapshot'] },
  {
    old: 'stateDir',
    now: 'historyDir',
    flags: ['--state-dir', '--history-dir'],
    env: ['MOAT_STATE_DIR', 'MOAT_HISTORY_DIR'],
  },
] as const;

/** Carries old option names over to the new ones; returns the deprecation notes to show. */
function applyRenames(command: Command): string[] {
  const notes: string[] = [];
  for (const rename of RENAMED) {
    const source = command.getOptionValueSource(rename.old);
    if (source !== 'cli' && source !== 'env') continue;
    const [oldName, newName] =
      source === 'env' && 'env' in rename ? rename.env : (rename.flags as readonly string[]);
    notes.push(`${oldName ?? ''} is deprecated and will be removed; use ${newName ?? ''}`);
    // Commander's own precedence: a flag beats an environment variable beats the default.
    const rank = (s: string | undefined): number => (s === 'cli' ? 2 : s === 'env' ? 1 : 0);
    if (rank(source) > rank(command.getOptionValueSource(rename.now)))
      command.setOptionValueWithSource(rename.now, command.getOptionValue(rename.old), source);
  }
  return notes;
}

function viewKind(output: Output): ViewKind {
  if (output.json === true) return 'json';
  return output.logFormat === 'json' ? 'json-lines' : 'text';
}

let exitCode: number = ExitCode.ok;

/**
 * Runs one use case in the view its command's options ask for; a failure is reported in that
 * view (a `--json` command that fails still prints JSON) and sets the exit code.
 */
async function run(command: Command, useCase: (ctx: Context) => Promise<number>): Promise<void> {
  const globals = command.optsWithGlobals<Globals>();
  const view = createView(io, {
    kind: viewKind(command.opts<Output>()),
    color: wantsColor({
      flag: globals.color,
      terminal: process.stdout.isTTY,
      env: process.env,
    }),
  });
  for (const note of applyRenames(command)) view.warn(note);
  try {
    exitCode = await useCase({ io, runner: execRunner, env: process.env, view });
  } catch (error) {
    exitCode = view.failure(error, { debug: globals.debug === true });
  }
}

const fileOption = (): Option =>
  new Option('-f, --file <path>', 'the policy file (`-`: standard input)').default('firewall.yaml');
const historyDirOption = (): Option =>
  new Option('--history-dir <dir>', 'where moat records its runs (runs.json)')
    .env('MOAT_HISTORY_DIR')
    .default(DEFAULT_STATE_DIR);
const oldHistoryDirOption = (): Option =>
  new Option('--state-dir <dir>').env('MOAT_STATE_DIR').hideHelp();
const backendOption = (): Option =>
  new Option('--backend <backend>', 'iptables backend')
    .choices(['auto', 'nft', 'legacy'])
    .default('auto');
const snapshotOption = (what: string): Option =>
  new Option('--snapshot <dir>', `${what} a snapshot written by \`moat snapshot\``);
const oldSnapshotOption = (): Option => new Option('--state <dir>').hideHelp();

/** The options every command that applies shares: lock, run record, metrics, log format. */
function withRunOptions(command: Command, lockTimeout: string): Command {
  return command
    .addOption(
      new Option(
        '--lock-file <path>',
        'names the lock that keeps applies apart (an abstract unix socket; no file is made)',
      )
        .env('MOAT_LOCK_FILE')
        .default(DEFAULT_LOCK_PATH),
    )
    .option(
      '--lock-timeout <duration>',
      'how long to wait for a busy lock (0, 30s, 2m); then exit 4',
      lockTimeout,
    )
    .addOption(historyDirOption())
    .addOption(oldHistoryDirOption())
    .option('--metrics-file <path>', 'write a node_exporter textfile after each run')
    .addOption(
      new Option('--log-format <format>', 'text, or one JSON object per line')
        .choices(['text', 'json'])
        .default('text'),
    );
}

interface RunOptions {
  backend: 'auto';
  lockFile: string;
  lockTimeout: string;
  historyDir: string;
  metricsFile?: string;
  logFormat: LogFormat;
}

function runOptions(o: RunOptions) {
  return {
    backend: o.backend,
    lockFile: o.lockFile,
    lockTimeoutMs: parseDuration(o.lockTimeout),
    stateDir: o.historyDir,
    ...(o.metricsFile === undefined ? {} : { metricsFile: o.metricsFile }),
  };
}

function build(): Command {
  const program = new Command('moat')
    .description("Keep a Docker host's firewall exactly as firewall.yaml says.")
    .version(TOOL_VERSION)
    .option('--no-color', 'no colour in output (a non-empty NO_COLOR is honoured too)')
    .option('--debug', 'show stack traces of internal errors')
    .exitOverride()
    .showHelpAfterError();

  program
    .command('validate')
    .description('check the policy file; needs no root and no Docker')
    .addOption(fileOption())
    .option('--json', 'diagnostics as JSON')
    .action((o: { file: string }, command: Command) =>
      run(command, async (ctx) => {
        const { validateCommand } = await import('../app/validate.js');
        return validateCommand(ctx, { file: o.file });
      }),
    );

  program
    .command('plan')
    .description('show what apply would change on this host (or on a snapshot)')
    .addOption(fileOption())
    .addOption(backendOption())
    .addOption(snapshotOption('plan against'))
    .addOption(oldSnapshotOption())
    .option('--json', 'the plan as a versioned JSON document')
    .option(
      '--out <file>',
      'save the plan for `moat apply <file>` (`-`: print the saved plan instead of the text)',
    )
    .option('--detailed-exitcode', 'exit 0 when there is nothing to do, 2 when there are changes')
    .action(
      (
        o: {
          file: string;
          backend: 'auto';
          snapshot?: string;
          out?: string;
          detailedExitcode?: boolean;
        },
        command: Command,
      ) =>
        run(command, async (ctx) => {
          const { planCommand } = await import('../app/plan.js');
          return planCommand(ctx, {
            file: o.file,
            backend: o.backend,
            ...(o.snapshot === undefined ? {} : { snapshot: o.snapshot }),
            ...(o.out === undefined ? {} : { out: o.out }),
            detailedExitcode: o.detailedExitcode === true,
          });
        }),
    );

  withRunOptions(program.command('apply'), '0')
    .description('make the host match the policy (or exactly a saved plan) in one transaction')
    .argument('[planfile]', 'a plan saved by `moat plan --out` (`-`: standard input)')
    .addOption(
      new Option(
        '-f, --file <path>',
        'the policy file (`-`: standard input; default: the one the saved plan was made from, else firewall.yaml)',
      ),
    )
    .addOption(backendOption())
    .option('--auto-approve', 'apply without asking')
    .option('--quiet', 'print nothing when nothing changed, one line when something did')
    .option('--detailed-exitcode', 'exit 0 when nothing changed, 2 when changes were applied')
    .addOption(new Option('--snapshot <dir>').hideHelp())
    .addOption(oldSnapshotOption())
    .action(
      (
        planFile: string | undefined,
        o: RunOptions & {
          file?: string;
          autoApprove?: boolean;
          quiet?: boolean;
          detailedExitcode?: boolean;
          snapshot?: string;
        },
        command: Command,
      ) =>
        run(command, async (ctx) => {
          if (o.snapshot !== undefined)
            throw new UserError('apply changes a live host; it does not take --snapshot');
          const { applyCommand } = await import('../app/apply.js');
          return applyCommand(ctx, {
            ...runOptions(o),
            ...(o.file === undefined ? {} : { file: o.file }),
            ...(planFile === undefined ? {} : { planFile }),
            autoApprove: o.autoApprove === true,
            quiet: o.quiet === true,
            detailedExitcode: o.detailedExitcode === true,
          });
        }),
    );

  withRunOptions(program.command('watch'), '30s')
    .description('keep the host reconciled: follow Docker events and re-apply; SIGTERM stops it')
    .addOption(fileOption())
    .addOption(backendOption())
    .option('--interval <duration>', 'also reconcile this often, to catch manual edits', '5m')
    .option(
      '--debounce <duration>',
      'wait this long after a Docker event (a container start is applied at once)',
      '2s',
    )
    .action(
      (o: RunOptions & { file: string; interval: string; debounce: string }, command: Command) =>
        run(command, async (ctx) => {
          const stop = new AbortController();
          const onSignal = (): void => {
            stop.abort();
          };
          // Kept (not `once`) until watch returns: a second signal must not kill watch mid-stop.
          process.on('SIGTERM', onSignal);
          process.on('SIGINT', onSignal);
          const { watchCommand } = await import('../app/watch.js');
          try {
            return await watchCommand(
              ctx,
              {
                ...runOptions(o),
                file: o.file,
                autoApprove: true,
                quiet: true,
                detailedExitcode: false,
                intervalMs: parseDuration(o.interval),
                debounceMs: parseDuration(o.debounce),
              },
              stop.signal,
            );
          } finally {
            process.off('SIGTERM', onSignal);
            process.off('SIGINT', onSignal);
          }
        }),
    );

  program
    .command('explain')
    .description(
      'can a source reach a destination, and why: the verdict and the rules that decide it',
    )
    .requiredOption('--from <source>', 'host, anyone, container:NAME, an address or a CIDR block')
    .requiredOption(
      '--to <destination>',
      'CONTAINER:PORT[/PROTO], ADDRESS:PORT[/PROTO] or [IPV6]:PORT[/PROTO]',
    )
    .addOption(fileOption())
    .addOption(backendOption())
    .addOption(snapshotOption('explain on'))
    .addOption(oldSnapshotOption())
    .option('--after-plan', 'evaluate the ruleset the pending plan would produce')
    .addOption(new Option('--family <family>', 'only this family').choices(['ipv4', 'ipv6']))
    .option('--json', 'as a versioned JSON document')
    .action(
      (
        o: {
          from: string;
          to: string;
          file: string;
          backend: 'auto';
          snapshot?: string;
          afterPlan?: boolean;
          family?: 'ipv4' | 'ipv6';
        },
        command: Command,
      ) =>
        run(command, async (ctx) => {
          const { explainCommand } = await import('../app/explain.js');
          return explainCommand(ctx, {
            from: o.from,
            to: o.to,
            file: o.file,
            backend: o.backend,
            ...(o.snapshot === undefined ? {} : { snapshot: o.snapshot }),
            ...(o.family === undefined ? {} : { family: o.family }),
            afterPlan: o.afterPlan === true,
          });
        }),
    );

  program
    .command('test')
    .description("check the reachability assertions next to the policy against the plan's result")
    .addOption(fileOption())
    .option('--tests <file>', 'the assertions (default: firewall.tests.yaml next to the policy)')
    .addOption(backendOption())
    .addOption(snapshotOption('test against'))
    .addOption(oldSnapshotOption())
    .option('--current', "test the host's ruleset as it is, not as the plan would leave it")
    .option('--json', 'as a versioned JSON document')
    .action(
      (
        o: { file: string; tests?: string; backend: 'auto'; snapshot?: string; current?: boolean },
        command: Command,
      ) =>
        run(command, async (ctx) => {
          const { testCommand } = await import('../app/explain.js');
          return testCommand(ctx, {
            file: o.file,
            backend: o.backend,
            ...(o.tests === undefined ? {} : { tests: o.tests }),
            ...(o.snapshot === undefined ? {} : { snapshot: o.snapshot }),
            current: o.current === true,
          });
        }),
    );

  program
    .command('status')
    .description(
      'is the host as the policy says? Ready (exit 0), Drifted (2) or Failing (5); 1: cannot tell',
    )
    .addOption(fileOption())
    .addOption(backendOption())
    .addOption(snapshotOption('judge'))
    .addOption(historyDirOption())
    .addOption(oldHistoryDirOption())
    .option('--json', 'as JSON')
    .action(
      (
        o: { file: string; backend: 'auto'; snapshot?: string; historyDir: string },
        command: Command,
      ) =>
        run(command, async (ctx) => {
          const { statusCommand } = await import('../app/status.js');
          return statusCommand(ctx, {
            file: o.file,
            backend: o.backend,
            ...(o.snapshot === undefined ? {} : { snapshot: o.snapshot }),
            stateDir: o.historyDir,
          });
        }),
    );

  program
    .command('drops')
    .description(
      "what moat's rules dropped: counters per policy rule, or logged drops read back to the rule",
    )
    .addOption(fileOption())
    .addOption(backendOption())
    .option('--line <text>', 'explain one line moat logged (ulogd2 LOGEMU or JSON)')
    .option('--log <file>', 'explain every line moat logged in this file (- for standard input)')
    .option('--follow', 'with --log FILE: keep reading as the log grows (Ctrl-C stops)')
    .option('--json', 'as JSON (one object per logged line)')
    .action(
      (
        o: { file: string; backend: 'auto'; line?: string; log?: string; follow?: boolean },
        command: Command,
      ) =>
        run(command, async (ctx) => {
          const follow = o.follow === true;
          if (follow && (o.log === undefined || o.log === '-'))
            throw new UserError('--follow needs --log FILE', 'usage');
          // Following ends on SIGINT/SIGTERM like tail -f, with exit 0; otherwise signals kill.
          const stop = new AbortController();
          const onSignal = (): void => {
            stop.abort();
          };
          if (follow) {
            process.on('SIGTERM', onSignal);
            process.on('SIGINT', onSignal);
          }
          try {
            const { dropsCommand } = await import('../app/drops.js');
            return await dropsCommand(ctx, {
              file: o.file,
              backend: o.backend,
              follow,
              ...(o.line === undefined ? {} : { line: o.line }),
              ...(o.log === undefined ? {} : { log: o.log }),
              stdin: process.stdin,
              signal: stop.signal,
            });
          } finally {
            process.off('SIGTERM', onSignal);
            process.off('SIGINT', onSignal);
          }
        }),
    );

  program
    .command('init')
    .description("write a firewall.yaml that reproduces the running containers' exposure today")
    .option('--out <file>', 'write to this file instead of standard output')
    .option('--force', 'overwrite --out if it exists')
    .addOption(snapshotOption('take the containers from'))
    .action((o: { out?: string; force?: boolean; snapshot?: string }, command: Command) =>
      run(command, async (ctx) => {
        const { initCommand } = await import('../app/init.js');
        return initCommand(ctx, {
          ...(o.out === undefined ? {} : { out: o.out }),
          ...(o.snapshot === undefined ? {} : { snapshot: o.snapshot }),
          force: o.force === true,
        });
      }),
    );

  program
    .command('show')
    .description('print a saved plan again')
    .argument('<planfile>', 'a plan saved by `moat plan --out` (`-`: standard input)')
    .option('--json', 'as JSON')
    .action((planFile: string, _o: unknown, command: Command) =>
      run(command, async (ctx) => {
        const { showCommand } = await import('../app/commands.js');
        return showCommand(ctx, { planFile });
      }),
    );

  program
    .command('snapshot')
    .description("write this host's state to a directory, for `moat plan --snapshot`")
    .requiredOption('--out <dir>', 'directory to write')
    .addOption(backendOption())
    .action((o: { out: string; backend: 'auto' }, command: Command) =>
      run(command, async (ctx) => {
        const { snapshotCommand } = await import('../app/commands.js');
        return snapshotCommand(ctx, { out: o.out, backend: o.backend });
      }),
    );

  return program;
}

async function main(argv: readonly string[]): Promise<number> {
  const program = build();
  try {
    await program.parseAsync([...argv]);
    return exitCode;
  } catch (error) {
    // Only commander's own errors (usage, --help, --version) get here: `run` reports the rest.
    if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCode.ok : ExitCode.error;
    throw error;
  }
}

process.exitCode = await main(process.argv);
