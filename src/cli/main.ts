/**
 * The CLI entry: parse arguments, call one use case, print, set the exit code. The only module
 * that touches `process`. Each command's use case is imported when that command runs, so a run
 * loads only the code it needs (docs/performance.md: start-up is most of a small run).
 */
import { createInterface } from 'node:readline/promises';
import { Command, CommanderError, Option } from 'commander';
import type { LogFormat } from '../app/apply.js';
import type { Context } from '../app/commands.js';
import type { Io } from '../app/io.js';
import { TOOL_VERSION } from '../app/version.js';
import { ExitCode, MoatError } from '../core/errors.js';
import { execRunner } from '../host/exec-runner.js';
import { DEFAULT_LOCK_PATH, parseDuration } from '../host/lock.js';
import { DEFAULT_STATE_DIR } from '../state/runs.js';

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
};

interface Globals {
  color: boolean;
  debug?: boolean;
}

function context(program: Command): Context {
  const globals = program.opts<Globals>();
  const color = globals.color && process.stdout.isTTY && process.env.NO_COLOR === undefined;
  return { io, runner: execRunner, env: process.env, color };
}

const fileOption = (): Option =>
  new Option('-f, --file <path>', 'the policy file').default('firewall.yaml');
const stateDirOption = (): Option =>
  new Option('--state-dir <dir>', 'where moat records its runs')
    .env('MOAT_STATE_DIR')
    .default(DEFAULT_STATE_DIR);
const backendOption = (): Option =>
  new Option('--backend <backend>', 'iptables backend')
    .choices(['auto', 'nft', 'legacy'])
    .default('auto');

/** The options every command that applies shares: lock, run record, metrics, log format. */
function withRunOptions(command: Command, lockTimeout: string): Command {
  return command
    .addOption(
      new Option('--lock-file <path>', 'the lock that keeps applies apart')
        .env('MOAT_LOCK_FILE')
        .default(DEFAULT_LOCK_PATH),
    )
    .option(
      '--lock-timeout <duration>',
      'how long to wait for a busy lock (0, 30s, 2m); then exit 4',
      lockTimeout,
    )
    .addOption(stateDirOption())
    .option('--metrics-file <path>', 'write a node_exporter textfile after each run')
    .addOption(
      new Option('--log-format <format>', 'text, or one JSON object per line')
        .choices(['text', 'json'])
        .default('text'),
    );
}

let exitCode: number = ExitCode.ok;
let logFormat: LogFormat = 'text';

function build(): Command {
  const program = new Command('moat')
    .description("Keep a Docker host's firewall exactly as firewall.yaml says.")
    .version(TOOL_VERSION)
    .option('--no-color', 'no colour in output (NO_COLOR is honoured too)')
    .option('--debug', 'show stack traces of internal errors')
    .exitOverride()
    .showHelpAfterError();

  program
    .command('validate')
    .description('check the policy file; needs no root and no Docker')
    .addOption(fileOption())
    .option('--json', 'diagnostics as JSON')
    .action(async (o: { file: string; json?: boolean }) => {
      const { validateCommand } = await import('../app/validate.js');
      exitCode = await validateCommand(context(program), { file: o.file, json: o.json === true });
    });

  program
    .command('plan')
    .description('show what apply would change on this host (or on a snapshot)')
    .addOption(fileOption())
    .addOption(backendOption())
    .option(
      '--state <dir>',
      'plan against a snapshot written by `moat snapshot` (no root, no Docker)',
    )
    .option('--json', 'the plan as a versioned JSON document')
    .option('--out <file>', 'save the plan for `moat apply <file>`')
    .option('--detailed-exitcode', 'exit 0 when there is nothing to do, 2 when there are changes')
    .action(
      async (o: {
        file: string;
        backend: 'auto';
        state?: string;
        json?: boolean;
        out?: string;
        detailedExitcode?: boolean;
      }) => {
        const { planCommand } = await import('../app/plan.js');
        exitCode = await planCommand(context(program), {
          file: o.file,
          backend: o.backend,
          ...(o.state === undefined ? {} : { state: o.state }),
          ...(o.out === undefined ? {} : { out: o.out }),
          json: o.json === true,
          detailedExitcode: o.detailedExitcode === true,
        });
      },
    );

  withRunOptions(program.command('apply'), '0')
    .description('make the host match the policy (or exactly a saved plan) in one transaction')
    .argument('[planfile]', 'a plan saved by `moat plan --out`')
    .addOption(fileOption())
    .addOption(backendOption())
    .option('--auto-approve', 'apply without asking')
    .option('--quiet', 'print nothing when nothing changed, one line when something did')
    .option('--detailed-exitcode', 'exit 0 when nothing changed, 2 when changes were applied')
    .addOption(new Option('--state <dir>').hideHelp())
    .action(
      async (
        planFile: string | undefined,
        o: {
          file: string;
          backend: 'auto';
          autoApprove?: boolean;
          quiet?: boolean;
          detailedExitcode?: boolean;
          state?: string;
          lockFile: string;
          lockTimeout: string;
          stateDir: string;
          metricsFile?: string;
          logFormat: LogFormat;
        },
      ) => {
        if (o.state !== undefined)
          throw new MoatError('apply changes a live host; it does not take --state', {
            code: 'usage',
          });
        logFormat = o.logFormat;
        const { applyCommand } = await import('../app/apply.js');
        exitCode = await applyCommand(context(program), {
          file: o.file,
          backend: o.backend,
          ...(planFile === undefined ? {} : { planFile }),
          autoApprove: o.autoApprove === true,
          lockFile: o.lockFile,
          lockTimeoutMs: parseDuration(o.lockTimeout),
          quiet: o.quiet === true,
          detailedExitcode: o.detailedExitcode === true,
          stateDir: o.stateDir,
          ...(o.metricsFile === undefined ? {} : { metricsFile: o.metricsFile }),
          logFormat: o.logFormat,
        });
      },
    );

  withRunOptions(program.command('watch'), '30s')
    .description('keep the host reconciled: follow Docker events and re-apply; SIGTERM stops it')
    .addOption(fileOption())
    .addOption(backendOption())
    .option('--interval <duration>', 'also reconcile this often, to catch manual edits', '5m')
    .option('--debounce <duration>', 'wait this long after a Docker event', '2s')
    .action(
      async (o: {
        file: string;
        backend: 'auto';
        interval: string;
        debounce: string;
        lockFile: string;
        lockTimeout: string;
        stateDir: string;
        metricsFile?: string;
        logFormat: LogFormat;
      }) => {
        logFormat = o.logFormat;
        const stop = new AbortController();
        const onSignal = (): void => {
          stop.abort();
        };
        // Kept (not `once`) until watch returns: proper-lockfile's signal-exit re-raises a
        // signal that it finds no other listener for, which would kill watch mid-stop.
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
        const { watchCommand } = await import('../app/watch.js');
        try {
          exitCode = await watchCommand(
            context(program),
            {
              file: o.file,
              backend: o.backend,
              autoApprove: true,
              quiet: true,
              detailedExitcode: false,
              lockFile: o.lockFile,
              lockTimeoutMs: parseDuration(o.lockTimeout),
              stateDir: o.stateDir,
              ...(o.metricsFile === undefined ? {} : { metricsFile: o.metricsFile }),
              logFormat: o.logFormat,
              intervalMs: parseDuration(o.interval),
              debounceMs: parseDuration(o.debounce),
            },
            stop.signal,
          );
        } finally {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
        }
      },
    );

  program
    .command('status')
    .description('is the host as the policy says? Ready (exit 0), Drifted (2) or Failing (1)')
    .addOption(fileOption())
    .addOption(backendOption())
    .addOption(stateDirOption())
    .option('--json', 'as JSON')
    .action(async (o: { file: string; backend: 'auto'; stateDir: string; json?: boolean }) => {
      const { statusCommand } = await import('../app/status.js');
      exitCode = await statusCommand(context(program), {
        file: o.file,
        backend: o.backend,
        stateDir: o.stateDir,
        json: o.json === true,
      });
    });

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
      async (o: {
        file: string;
        backend: 'auto';
        line?: string;
        log?: string;
        follow?: boolean;
        json?: boolean;
      }) => {
        if (o.follow === true && (o.log === undefined || o.log === '-'))
          throw new MoatError('--follow needs --log FILE', { code: 'usage' });
        // Following ends on SIGINT/SIGTERM like tail -f, with exit 0; otherwise signals kill.
        const stop = new AbortController();
        const onSignal = (): void => {
          stop.abort();
        };
        const follow = o.follow === true;
        if (follow) {
          process.on('SIGTERM', onSignal);
          process.on('SIGINT', onSignal);
        }
        const { dropsCommand } = await import('../app/drops.js');
        try {
          exitCode = await dropsCommand(context(program), {
            file: o.file,
            backend: o.backend,
            json: o.json === true,
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
      },
    );

  program
    .command('init')
    .description("write a firewall.yaml that reproduces the running containers' exposure today")
    .option('--out <file>', 'write to this file instead of standard output')
    .option('--force', 'overwrite --out if it exists')
    .action(async (o: { out?: string; force?: boolean }) => {
      const { initCommand } = await import('../app/init.js');
      exitCode = await initCommand(context(program), {
        ...(o.out === undefined ? {} : { out: o.out }),
        force: o.force === true,
      });
    });

  program
    .command('show')
    .description('print a saved plan again')
    .argument('<planfile>')
    .option('--json', 'as JSON')
    .action(async (planFile: string, o: { json?: boolean }) => {
      const { showCommand } = await import('../app/commands.js');
      exitCode = await showCommand(context(program), { planFile, json: o.json === true });
    });

  program
    .command('snapshot')
    .description("write this host's state to a directory, for `moat plan --state`")
    .requiredOption('--out <dir>', 'directory to write')
    .addOption(backendOption())
    .action(async (o: { out: string; backend: 'auto' }) => {
      const { snapshotCommand } = await import('../app/commands.js');
      exitCode = await snapshotCommand(context(program), { out: o.out, backend: o.backend });
    });

  return program;
}

async function main(argv: readonly string[]): Promise<number> {
  const program = build();
  try {
    await program.parseAsync([...argv]);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.error;
    }
    if (logFormat === 'json') {
      const code = error instanceof MoatError ? error.code : 'internal';
      const message = error instanceof Error ? error.message : String(error);
      io.err(
        JSON.stringify({
          level: 'error',
          event: 'error',
          time: new Date().toISOString(),
          code,
          message,
        }) + '\n',
      );
    }
    if (error instanceof MoatError && error.source === 'user') {
      if (logFormat !== 'json') io.err(`moat: ${error.message}\n`);
      return error.exitCode;
    }
    io.err(
      `moat: internal error (this is a bug): ${error instanceof Error ? error.message : String(error)}\n`,
    );
    if (program.opts<Globals>().debug === true && error instanceof Error)
      io.err(`${error.stack ?? ''}\n`);
    else io.err('Run again with --debug to see the stack trace.\n');
    return ExitCode.error;
  }
}

process.exitCode = await main(process.argv);
