/**
 * Generate moat's man page and its bash and zsh completions from the commander program the CLI
 * itself builds (src/cli/main.ts, compiled to dist/cli/main.js by `npm run build`), through
 * commander's own Help methods, which are also what print `moat --help`. The three cannot
 * disagree with `--help`, and a new option or command reaches all of them with no edit here.
 *
 *   node scripts/gen-cli-docs.mjs OUTDIR    # writes OUTDIR/moat.1, OUTDIR/moat.bash, OUTDIR/_moat
 *
 * Only the sections `--help` has no source for (exit status, files, environment, examples) are
 * written here; test/package/cli-docs.test.ts keeps them honest.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const root = new URL('..', import.meta.url);
export const CLI_MODULE = new URL('dist/cli/main.js', root);

/**
 * The program dist/cli/main.js builds. That module builds the program and parses process.argv
 * in one go when it is imported; while it loads, parsing only hands the program over, so no
 * command runs. (It and this script share node_modules/commander, hence one Command class.) An
 * ES module runs once per process, so the program is kept.
 * @type {Promise<Command> | undefined}
 */
let program;
/** @returns {Promise<Command>} */
export function loadProgram() {
  program ??= captureProgram();
  return program;
}

/** @returns {Promise<Command>} */
async function captureProgram() {
  /** @type {Command | undefined} */
  let captured;
  /** @this {Command} */
  function capture() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the program is what we want
    captured = this;
    return this;
  }
  const names = /** @type {const} */ (['parse', 'parseAsync']);
  const saved = names.map((name) => Object.getOwnPropertyDescriptor(Command.prototype, name));
  const exitCode = process.exitCode;
  Command.prototype.parse = capture;
  Command.prototype.parseAsync = function captureAsync() {
    return Promise.resolve(capture.call(this));
  };
  try {
    await import(CLI_MODULE.href);
  } finally {
    names.forEach((name, i) => {
      const descriptor = saved[i];
      if (descriptor !== undefined) Object.defineProperty(Command.prototype, name, descriptor);
    });
    process.exitCode = exitCode;
  }
  if (captured === undefined) {
    throw new Error(`${fileURLToPath(CLI_MODULE)} did not parse a commander program`);
  }
  return captured;
}

/**
 * @typedef {{ flags: string[], term: string, description: string, value?: string,
 *   choices?: string[], env?: string }} CliOption
 * @typedef {{ term: string, name: string, required: boolean, description: string }} CliArgument
 * @typedef {{ name: string, term: string, usage: string, summary: string, description: string,
 *   argumentsListed: boolean, arguments: CliArgument[], options: CliOption[] }} CliCommand
 * @typedef {{ name: string, version: string, usage: string, description: string,
 *   options: CliOption[], commands: CliCommand[] }} CliModel
 */

/**
 * What `--help` shows of a program and its commands, as data: every string comes from
 * commander's Help, exactly as `--help` prints it (before wrapping).
 * @param {Command} program
 * @returns {CliModel}
 */
export function cliModel(program) {
  const help = program.createHelp();
  /** @param {Command} cmd @returns {CliOption[]} */
  const options = (cmd) =>
    help.visibleOptions(cmd).map((o) => {
      const value = /[<[]([^>\]]+)[>\]]/.exec(o.flags)?.[1];
      return {
        flags: [o.short, o.long].filter((f) => f !== undefined),
        term: help.optionTerm(o),
        description: help.optionDescription(o),
        ...(value === undefined ? {} : { value }),
        ...(o.argChoices === undefined ? {} : { choices: [...o.argChoices] }),
        ...(o.envVar === undefined ? {} : { env: o.envVar }),
      };
    });
  return {
    name: program.name(),
    version: program.version() ?? '',
    usage: help.commandUsage(program),
    description: help.commandDescription(program),
    options: options(program),
    commands: help.visibleCommands(program).map((cmd) => ({
      name: cmd.name(),
      term: help.subcommandTerm(cmd),
      // commander's implicit `help` command has no parent to name in its usage.
      usage: `${cmd.parent === null ? `${program.name()} ` : ''}${help.commandUsage(cmd)}`,
      summary: help.subcommandDescription(cmd),
      description: help.commandDescription(cmd),
      // Listed under "Arguments:" only when `--help` lists them (when one has a description).
      argumentsListed: help.visibleArguments(cmd).length > 0,
      arguments: cmd.registeredArguments.map((a) => ({
        term: help.argumentTerm(a),
        name: a.name(),
        required: a.required,
        description: help.argumentDescription(a),
      })),
      options: options(cmd),
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// The man page

/**
 * Text for roff: backslashes, the ASCII quotes groff would curl, and a control character at the
 * start of a line escaped; every hyphen made a minus sign, so flags and commands copy-paste.
 * @param {string} text
 */
function roff(text) {
  return text
    .replaceAll('\\', '\\e')
    .replaceAll("'", '\\(aq')
    .replaceAll('`', '\\(ga')
    .replaceAll('-', '\\-')
    .replace(/^\./gm, '\\&.');
}

/** `-f, --file <path>` → bold flags, italic value. @param {string} term */
function roffTerm(term) {
  return term
    .split(/(<[^>]+>|\[[^\]]+\])/)
    .map((part, i) =>
      part === '' ? '' : i % 2 === 1 ? `\\fI${roff(part)}\\fR` : `\\fB${roff(part)}\\fR`,
    )
    .join('');
}

/** @param {CliOption[]} options */
function roffOptions(options) {
  return options.flatMap((o) => ['.TP', roffTerm(o.term), roff(o.description)]);
}

/**
 * Sections `--help` has no source for. EXIT STATUS follows src/core/errors.ts (ExitCode) and
 * docs/operations.md; the test checks that every ExitCode is listed.
 */
const EXIT_STATUS = [
  [0, 'Nothing to do, or done. For status: Ready.'],
  [
    1,
    'An error: an invalid policy, Docker unreachable, an apply that failed and was rolled back. For status: it could not tell.',
  ],
  [2, 'With --detailed-exitcode: changes planned or applied. For status: Drifted.'],
  [3, 'moat apply PLANFILE: the host, the policy or moat changed since the plan was made.'],
  [4, 'The lock is busy (another apply is running) after --lock-timeout.'],
  [5, 'moat status: Failing (the last run failed).'],
];

const FILES = [
  [
    '/etc/moat/firewall.yaml',
    "The host's policy, as the Debian package installs it (a conffile). Commands read firewall.yaml in the working directory unless given --file.",
  ],
  [
    '/var/lib/moat/',
    'Where apply and watch record their runs (runs.json), which status reads; see --history-dir.',
  ],
  ['/run/moat.lock', 'The lock that keeps applies apart; see --lock-file.'],
  ['/usr/share/moat/firewall.schema.json', 'The JSON Schema of the policy file, for editors.'],
  [
    '/lib/systemd/system/moat-*.service, moat-apply.timer',
    'systemd units for unattended runs, installed but not enabled: the apply timer with the boot unit, or the watch unit.',
  ],
  [
    '/usr/share/doc/moat/',
    'The policy language (docs/policy.md), operations (docs/operations.md) and examples.',
  ],
];

const EXAMPLES = [
  ['moat validate -f /etc/moat/firewall.yaml', 'Check the policy; needs no root and no Docker.'],
  ['moat plan -f /etc/moat/firewall.yaml', 'Show what apply would change on this host.'],
  [
    'moat apply -f /etc/moat/firewall.yaml',
    'Show the plan, ask, apply it in one transaction per family, verify.',
  ],
  [
    'moat init --out /etc/moat/firewall.yaml --force',
    'Replace the installed policy with one that keeps what the running containers expose today.',
  ],
  [
    'systemctl enable --now moat-apply.timer moat-boot.service',
    'Correct drift every 5 minutes and rebuild the rules at boot.',
  ],
];

/**
 * The man page (man(7) macros) for a model.
 * @param {CliModel} model
 * @param {{ date: string }} meta  date: YYYY-MM-DD of the build
 */
export function renderMan(model, meta) {
  const lines = [
    `.\\" Generated by scripts/gen-cli-docs.mjs from moat's command definitions; do not edit.`,
    `.TH ${model.name.toUpperCase()} 1 ${meta.date} "${model.name} ${model.version}" "User Commands"`,
    // No hyphenation, ragged right: flags and paths stay whole.
    '.nh',
    '.ad l',
    '.SH NAME',
    `${model.name} \\- ${roff(model.description.replace(/\.$/, ''))}`,
    '.SH SYNOPSIS',
    `.B ${model.name}`,
    '[\\fIoptions\\fR] \\fIcommand\\fR [\\fIcommand options\\fR]',
    ...model.commands.flatMap((c) => ['.br', roffTerm(c.usage)]),
    '.SH DESCRIPTION',
    roff(model.description),
    '.PP',
    roff(
      'firewall.yaml says, per container, who may reach its published ports and where it may send traffic. ' +
        'moat plan shows what must change on the live host; moat apply makes that change in one iptables-restore ' +
        'transaction per family, verifies it and rolls back on failure. moat owns only chains named MOAT-*, ipsets ' +
        'named moat-* and one jump at the top of DOCKER-USER and of INPUT per family.',
    ),
    '.SH OPTIONS',
    ...roffOptions(model.options),
    '.SH COMMANDS',
    ...model.commands.flatMap((c) => [
      `.SS ${roffTerm(c.usage)}`,
      roff(c.description === '' ? c.summary : c.description),
      ...(!c.argumentsListed
        ? []
        : [
            '.PP',
            'Arguments:',
            ...c.arguments.flatMap((a) => ['.TP', `\\fI${roff(a.term)}\\fR`, roff(a.description)]),
          ]),
      ...(c.options.length === 0 ? [] : ['.PP', 'Options:', ...roffOptions(c.options)]),
    ]),
    '.SH ENVIRONMENT',
    ...[
      ...new Map(
        model.commands
          .flatMap((c) => c.options)
          .filter((o) => o.env !== undefined)
          .map((o) => [o.env, o]),
      ),
    ].flatMap(([env, o]) => [
      '.TP',
      `\\fB${roff(env ?? '')}\\fR`,
      roff(`The default of ${o.flags.at(-1) ?? ''}.`),
    ]),
    '.TP',
    '\\fBNO_COLOR\\fR',
    roff('When set, no colour in output, as --no-color.'),
    '.SH EXIT STATUS',
    ...EXIT_STATUS.flatMap(([code, text]) => ['.TP', `\\fB${code}\\fR`, roff(String(text))]),
    '.SH FILES',
    ...FILES.flatMap(([path, text]) => ['.TP', `\\fI${roff(path ?? '')}\\fR`, roff(text ?? '')]),
    '.SH EXAMPLES',
    ...EXAMPLES.flatMap(([command, text]) => [
      '.TP',
      `\\fB${roff(command ?? '')}\\fR`,
      roff(text ?? ''),
    ]),
    '.SH SEE ALSO',
    '\\fBiptables\\fR(8), \\fBipset\\fR(8), \\fBdocker\\fR(1), \\fBsystemd.timer\\fR(5)',
    '',
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Completions

/** How an option's value or an argument completes: from its choices, as a file, or not. */
/** @param {{ value?: string, choices?: string[] }} o @returns {'files' | 'dirs' | 'none' | string[]} */
function valueKind(o) {
  if (o.choices !== undefined) return o.choices;
  if (o.value === undefined) return 'none';
  if (/dir/.test(o.value)) return 'dirs';
  if (/path|file/.test(o.value)) return 'files';
  return 'none';
}

/** A word list for bash: every name here is [a-z0-9-] and checked so. @param {string[]} words */
function bashWords(words) {
  for (const w of words)
    if (!/^[A-Za-z0-9_.-]+$/.test(w)) throw new Error(`cannot complete ${JSON.stringify(w)}`);
  return words.join(' ');
}

/** @param {'files' | 'dirs' | 'none' | string[]} kind */
function bashValue(kind) {
  if (kind === 'files') return '_moat_files -f';
  if (kind === 'dirs') return '_moat_files -d';
  if (kind === 'none') return 'COMPREPLY=()';
  return `COMPREPLY=($(compgen -W '${bashWords(kind)}' -- "$cur"))`;
}

/**
 * bash completion, for /usr/share/bash-completion/completions/moat. Self-contained (no
 * bash-completion helpers), so it also works sourced by hand.
 * @param {CliModel} model
 */
export function renderBash(model) {
  const commandNames = model.commands.map((c) => c.name);
  const valueCases = (/** @type {CliOption[]} */ options) =>
    options
      .filter((o) => o.value !== undefined)
      .map((o) => `        ${o.flags.join('|')}) ${bashValue(valueKind(o))}; return 0 ;;`);
  const argumentKind = (/** @type {CliCommand} */ c) =>
    c.name === 'help' ? commandNames : c.arguments.length > 0 ? 'files' : 'none';
  const lines = [
    `# bash completion for ${model.name}. Generated by scripts/gen-cli-docs.mjs from moat's`,
    '# command definitions; do not edit.',
    '',
    '_moat_files() {',
    "  local IFS=$'\\n'",
    '  COMPREPLY=($(compgen "$1" -- "$cur"))',
    '  compopt -o filenames 2>/dev/null',
    '  return 0',
    '}',
    '',
    '_moat() {',
    '  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}',
    '  local command="" i',
    '  COMPREPLY=()',
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    case ${COMP_WORDS[i]} in',
    '      -*) ;;',
    '      *) command=${COMP_WORDS[i]}; break ;;',
    '    esac',
    '  done',
    '  local options words',
    '  case $command in',
    `    '') options='${bashWords(model.options.flatMap((o) => o.flags))}'; words='${bashWords(commandNames)}' ;;`,
    ...model.commands.map(
      (c) =>
        `    ${c.name}) options='${bashWords(c.options.flatMap((o) => o.flags))}'; words='' ;;`,
    ),
    '    *) return 0 ;;',
    '  esac',
    '  if ((COMP_CWORD > 1)); then',
    '    case $command in',
    ...model.commands
      .filter((c) => c.options.some((o) => o.value !== undefined))
      .flatMap((c) => [
        `    ${c.name})`,
        '      case $prev in',
        ...valueCases(c.options),
        '      esac ;;',
      ]),
    '    esac',
    '  fi',
    '  if [[ $cur == -* ]]; then',
    '    COMPREPLY=($(compgen -W "$options" -- "$cur"))',
    '  elif [[ -z $command ]]; then',
    '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
    '  else',
    '    case $command in',
    ...model.commands
      .filter((c) => argumentKind(c) !== 'none')
      .map((c) => `      ${c.name}) ${bashValue(argumentKind(c))} ;;`),
    '    esac',
    '  fi',
    '  return 0',
    '}',
    `complete -F _moat ${model.name}`,
    '',
  ];
  return lines.join('\n');
}

/** A zsh single-quoted word. @param {string} text */
function zq(text) {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** Text inside an _arguments `[explanation]`, which ends at the first unescaped `]`. */
/** @param {string} text */
function zshExplanation(text) {
  return text.replaceAll('\\', '\\\\').replaceAll('[', '\\[').replaceAll(']', '\\]');
}

/** An _arguments message, which ends at the first unescaped `:`. @param {string} text */
function zshMessage(text) {
  return text.replaceAll('\\', '\\\\').replaceAll(':', '\\:');
}

/** @param {'files' | 'dirs' | 'none' | string[]} kind */
function zshAction(kind) {
  if (kind === 'files') return '_files';
  if (kind === 'dirs') return '_files -/';
  if (kind === 'none') return ' ';
  return `(${kind.join(' ')})`;
}

/** One `_arguments` spec per option. @param {CliOption} o */
function zshOptionSpecs(o) {
  const exclusive = o.flags.length > 1 ? `(${o.flags.join(' ')})` : '';
  const description = `[${zshExplanation(o.description)}]`;
  const value = o.value === undefined ? '' : `:${zshMessage(o.value)}:${zshAction(valueKind(o))}`;
  const isHelp = o.flags.includes('--help') || o.flags.includes('--version');
  return o.flags.map((flag) => {
    const suffix = o.value === undefined ? '' : flag.startsWith('--') ? '=' : '+';
    return zq(`${isHelp ? '(- *)' : exclusive}${flag}${suffix}${description}${value}`);
  });
}

/**
 * zsh completion, for /usr/share/zsh/vendor-completions/_moat.
 * @param {CliModel} model
 */
export function renderZsh(model) {
  const commandNames = model.commands.map((c) => c.name);
  const argumentSpecs = (/** @type {CliCommand} */ c) =>
    c.arguments.map((a, i) => {
      const action = c.name === 'help' ? `(${commandNames.join(' ')})` : '_files';
      const message = zshMessage(a.description === '' ? a.name : a.description);
      return zq(`${i + 1}:${a.required ? '' : ':'}${message}:${action}`);
    });
  const lines = [
    `#compdef ${model.name}`,
    `# zsh completion for ${model.name}. Generated by scripts/gen-cli-docs.mjs from moat's`,
    '# command definitions; do not edit.',
    '',
    '_moat() {',
    '  local curcontext=$curcontext state line ret=1',
    '  typeset -A opt_args',
    '  _arguments -C \\',
    ...model.options.flatMap(zshOptionSpecs).map((s) => `    ${s} \\`),
    "    '1: :->command' \\",
    "    '*:: :->argument' && ret=0",
    '  case $state in',
    '    command)',
    '      local -a commands=(',
    ...model.commands.map((c) => `        ${zq(`${c.name}:${c.summary}`)}`),
    '      )',
    "      _describe -t commands 'moat command' commands && ret=0",
    '      ;;',
    '    argument)',
    '      curcontext=${curcontext%:*:*}:moat-$line[1]:',
    '      case $line[1] in',
    ...model.commands.flatMap((c) => {
      const specs = [...c.options.flatMap(zshOptionSpecs), ...argumentSpecs(c)];
      return [
        `        ${c.name})`,
        specs.length === 0 ? '          ret=0' : `          _arguments \\`,
        ...specs.map((s, i) => `            ${s}${i === specs.length - 1 ? ' && ret=0' : ' \\'}`),
        '          ;;',
      ];
    }),
    '      esac',
    '      ;;',
    '  esac',
    '  return ret',
    '}',
    '',
    '_moat "$@"',
    '',
  ];
  return lines.join('\n');
}

/** @param {readonly string[]} argv */
async function main(argv) {
  const [out] = argv;
  if (out === undefined) {
    process.stderr.write('usage: node scripts/gen-cli-docs.mjs OUTDIR\n');
    return 2;
  }
  const model = cliModel(await loadProgram());
  const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? Date.now() / 1000);
  const date = new Date(epoch * 1000).toISOString().slice(0, 10);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'moat.1'), renderMan(model, { date }));
  writeFileSync(join(out, 'moat.bash'), renderBash(model));
  writeFileSync(join(out, '_moat'), renderZsh(model));
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
