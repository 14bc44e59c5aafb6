/**
 * The man page and the bash and zsh completions the Debian package ships
 * (scripts/gen-cli-docs.mjs) say what `moat --help` says: the same commands, the same options
 * with the same descriptions, the same choices. Read from the built CLI's own output, so a
 * generator that stopped following the command definitions fails here.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExitCode } from '../../src/core/errors.js';
import type { CliModel } from '../../scripts/gen-cli-docs.mjs';
import { renderBash, renderMan, renderZsh } from '../../scripts/gen-cli-docs.mjs';
import { CLI, assertBuilt } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Item {
  term: string;
  description: string;
}

/** One `--help` page: the usage line, the description and the items of each section. */
interface HelpPage {
  usage: string;
  description: string;
  sections: Map<string, Item[]>;
}

/** Parse commander's help layout: `  term   description`, continuations indented further. */
function parseHelp(text: string): HelpPage {
  const lines = text.split('\n');
  const usage = (lines[0] ?? '').replace(/^Usage: /, '');
  const sections = new Map<string, Item[]>();
  const description: string[] = [];
  let items: Item[] | undefined;
  for (const line of lines.slice(1)) {
    const heading = /^(\w[\w ]*):$/.exec(line);
    if (heading?.[1] !== undefined) {
      items = [];
      sections.set(heading[1], items);
    } else if (items === undefined) {
      if (line.trim() !== '') description.push(line.trim());
    } else if (/^ {2}\S/.test(line)) {
      const [term = '', ...rest] = line.trim().split(/ {2,}/);
      items.push({ term, description: rest.join(' ') });
    } else if (line.trim() !== '') {
      const last = items.at(-1);
      if (last !== undefined) last.description = `${last.description} ${line.trim()}`.trim();
    }
  }
  return { usage, description: description.join(' '), sections };
}

function help(args: readonly string[]): HelpPage {
  const result = spawnSync(process.execPath, [CLI, ...args, '--help'], { encoding: 'utf8' });
  expect(result.status).toBe(0);
  return parseHelp(result.stdout);
}

/** The flags of an option term: `-f, --file <path>` → -f --file. */
const flagsOf = (term: string): string[] =>
  term
    .replace(/\s*[<[].*$/, '')
    .split(', ')
    .map((f) => f.trim());

const choicesOf = (description: string): string[] | undefined =>
  /\(choices: ([^)]*?)(, default: [^)]*)?\)/
    .exec(description)?.[1]
    ?.split(', ')
    .map((c) => c.replaceAll('"', ''));

// --- the man page, read back from its roff source ------------------------------------------

const unroff = (text: string): string =>
  text
    .replace(/\\f[BIR]/g, '')
    .replaceAll('\\-', '-')
    .replaceAll('\\(aq', "'")
    .replaceAll('\\(ga', '`')
    .replaceAll('\\&', '')
    .replaceAll('\\e', '\\');

interface ManCommand {
  usage: string;
  description: string;
  options: Item[];
}

interface ManPage {
  name: string;
  options: Item[];
  commands: ManCommand[];
  sections: Map<string, Item[]>;
}

function parseMan(source: string): ManPage {
  const lines = source.split('\n');
  const sections = new Map<string, Item[]>();
  const commands: ManCommand[] = [];
  let section = '';
  let command: ManCommand | undefined;
  let name = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('.SH ')) {
      section = line.slice(4);
      sections.set(section, []);
      command = undefined;
    } else if (section === 'NAME' && !line.startsWith('.')) {
      name = unroff(line);
    } else if (line.startsWith('.SS ')) {
      command = {
        usage: unroff(line.slice(4)),
        description: unroff(lines[i + 1] ?? ''),
        options: [],
      };
      commands.push(command);
    } else if (line === '.TP') {
      const item = { term: unroff(lines[i + 1] ?? ''), description: unroff(lines[i + 2] ?? '') };
      (command?.options ?? sections.get(section))?.push(item);
    }
  }
  return { name, options: sections.get('OPTIONS') ?? [], commands, sections };
}

// --- the completions, read back --------------------------------------------------------------

/** `name) options='…'` per command in the bash script; '' is the top level. */
function bashOptions(script: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of script.matchAll(/^ {4}('?[\w-]*'?)\) options='([^']*)'/gm)) {
    out.set(
      (m[1] ?? '').replaceAll("'", ''),
      (m[2] ?? '').split(' ').filter((w) => w !== ''),
    );
  }
  return out;
}

interface ZshSpec {
  flag: string;
  explanation: string;
  action: string;
}

/** The option specs of each `name)` block of the zsh script; '' is the top level. */
function zshSpecs(script: string): Map<string, ZshSpec[]> {
  const out = new Map<string, ZshSpec[]>();
  let current = '';
  out.set(current, []);
  for (const line of script.split('\n')) {
    const block = /^ {8}([\w-]+)\)$/.exec(line);
    if (block?.[1] !== undefined) {
      current = block[1];
      out.set(current, []);
      continue;
    }
    const spec = /^\s+'(?:\([^)]*\))?(-[\w-]+)[=+]?\[((?:[^\]\\]|\\.)*)\](?::[^:]*:(.*?))?'/.exec(
      line.replaceAll("'\\''", "'"),
    );
    if (spec?.[1] === undefined) continue;
    out.get(current)?.push({
      flag: spec[1],
      explanation: (spec[2] ?? '').replace(/\\(.)/g, '$1'),
      action: spec[3] ?? '',
    });
  }
  return out;
}

/** bash completion of a command line, by the generated function, in `cwd`. */
function complete(script: string, words: readonly string[], cwd: string): string[] {
  const quoted = words.map((w) => `'${w}'`).join(' ');
  const result = spawnSync(
    'bash',
    [
      '-c',
      `source "$1"; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _moat; printf '%s\\n' "\${COMPREPLY[@]}"`,
      'complete',
      script,
    ],
    { encoding: 'utf8', cwd },
  );
  expect(result.stderr).toBe('');
  return result.stdout.split('\n').filter((l) => l !== '');
}

// ---------------------------------------------------------------------------------------------

let dir = '';
let man = '';
let bash = '';
let zsh = '';
let model: CliModel;
const pages = new Map<string, HelpPage>();

beforeAll(() => {
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), 'moat-cli-docs-'));
  execFileSync(process.execPath, ['scripts/gen-cli-docs.mjs', dir], { cwd: ROOT });
  man = readFileSync(join(dir, 'moat.1'), 'utf8');
  bash = readFileSync(join(dir, 'moat.bash'), 'utf8');
  zsh = readFileSync(join(dir, '_moat'), 'utf8');
  model = JSON.parse(
    execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { loadProgram, cliModel } from './scripts/gen-cli-docs.mjs'; console.log(JSON.stringify(cliModel(await loadProgram())));",
      ],
      { cwd: ROOT, encoding: 'utf8' },
    ),
  ) as CliModel;
  const top = help([]);
  pages.set('', top);
  for (const { term } of top.sections.get('Commands') ?? []) {
    const name = term.split(' ')[0] ?? '';
    if (name !== 'help') pages.set(name, help([name]));
  }
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const commandNames = (): string[] =>
  (pages.get('')?.sections.get('Commands') ?? []).map((i) => i.term.split(' ')[0] ?? '');

/** Every difference between a man page and the `--help` pages. */
function manDifferences(source: string): string[] {
  const page = parseMan(source);
  const top = pages.get('');
  const diffs: string[] = [];
  const same = (what: string, a: unknown, b: unknown): void => {
    if (JSON.stringify(a) !== JSON.stringify(b))
      diffs.push(`${what}: man ${JSON.stringify(a)} vs --help ${JSON.stringify(b)}`);
  };
  same('NAME', page.name, `moat - ${top?.description.replace(/\.$/, '')}`);
  same('OPTIONS', page.options, top?.sections.get('Options'));
  same(
    'COMMANDS',
    page.commands.map((c) => c.usage.split(' ')[1]),
    commandNames(),
  );
  for (const command of page.commands) {
    const name = command.usage.split(' ')[1] ?? '';
    const sub = pages.get(name);
    if (sub === undefined) continue; // `help` has no page of its own
    same(`${name} usage`, command.usage, sub.usage);
    same(`${name} description`, command.description, sub.description);
    same(`${name} options`, command.options, [
      ...(sub.sections.get('Arguments') ?? []),
      ...(sub.sections.get('Options') ?? []),
    ]);
  }
  return diffs;
}

describe('the man page says what --help says', () => {
  test('the help pages were read (the comparisons below have something to compare)', () => {
    expect(commandNames()).toEqual(expect.arrayContaining(['validate', 'plan', 'apply', 'help']));
    expect(pages.get('plan')?.sections.get('Options')?.length).toBeGreaterThan(3);
  });

  test('name, options, every command with its usage, description and options', () => {
    expect(manDifferences(man)).toEqual([]);
  });

  test('a man page made from a different program is caught', () => {
    const plan = model.commands.find((c) => c.name === 'plan');
    if (plan === undefined) throw new Error('no plan command');
    const missing = {
      ...model,
      commands: model.commands.map((c) =>
        c === plan ? { ...c, options: c.options.filter((o) => !o.flags.includes('--json')) } : c,
      ),
    };
    expect(manDifferences(renderMan(missing, { date: '2026-01-01' }))).toEqual([
      expect.stringMatching(/^plan options: /),
    ]);
    expect(renderMan(model, { date: '2026-01-01' })).toBe(
      man.replace(/^(\.TH \S+ 1) \S+/m, '$1 2026-01-01'),
    );
  });

  test('EXIT STATUS lists every exit code moat uses, and no other', () => {
    const codes = (parseMan(man).sections.get('EXIT STATUS') ?? []).map((i) => Number(i.term));
    expect(codes).toEqual(Object.values(ExitCode).sort());
  });

  describeWith(['man'], 'rendering', () => {
    test('man renders it without a warning', () => {
      const result = spawnSync('man', ['--warnings', '-l', join(dir, 'moat.1')], {
        encoding: 'utf8',
        env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', LC_ALL: 'C.UTF-8' },
      });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout).toMatch(/^ {7}moat plan \[options\]$/m);
    });
  });
});

describe('the bash completion offers what --help lists', () => {
  test('the commands and every option of each', () => {
    const options = bashOptions(bash);
    expect([...options.keys()]).toEqual(['', ...commandNames()]);
    for (const [name, page] of pages) {
      const flags = (page.sections.get('Options') ?? []).flatMap((i) => flagsOf(i.term));
      expect({ name, flags: options.get(name) }).toEqual({ name, flags });
    }
  });

  test('completes as a shell does: commands, options, choices, files', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'moat-complete-'));
    try {
      mkdirSync(join(cwd, 'snapshots'));
      writeFileSync(join(cwd, 'firewall.yaml'), 'version: 1\n');
      const script = join(dir, 'moat.bash');
      expect(complete(script, ['moat', 'pl'], cwd)).toEqual(['plan']);
      expect(complete(script, ['moat', ''], cwd)).toEqual(commandNames());
      expect(complete(script, ['moat', '--debug', 'st'], cwd)).toEqual(['status']);
      expect(complete(script, ['moat', 'help', 'va'], cwd)).toEqual(['validate']);
      for (const [name, page] of pages) {
        if (name === '') continue;
        for (const { term, description } of page.sections.get('Options') ?? []) {
          const long = flagsOf(term).at(-1) ?? '';
          expect(complete(script, ['moat', name, long.slice(0, -1)], cwd)).toContain(long);
          const choices = choicesOf(description);
          if (choices !== undefined) {
            expect(complete(script, ['moat', name, long, ''], cwd)).toEqual(choices);
          }
        }
      }
      expect(complete(script, ['moat', 'plan', '--file', ''], cwd).sort()).toEqual([
        'firewall.yaml',
        'snapshots',
      ]);
      expect(complete(script, ['moat', 'plan', '--snapshot', ''], cwd)).toEqual(['snapshots']);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  test('a completion made from a different program is caught', () => {
    const fewer = { ...model, commands: model.commands.filter((c) => c.name !== 'status') };
    expect([...bashOptions(renderBash(fewer)).keys()]).not.toEqual(['', ...commandNames()]);
  });
});

describeWith(['zsh'], 'the zsh completion offers what --help lists', () => {
  test('is valid zsh', () => {
    const result = spawnSync('zsh', ['-n', join(dir, '_moat')], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  test('the commands with their descriptions', () => {
    const listed = [...zsh.matchAll(/^ {8}'([\w-]+):(.*)'$/gm)].map((m) => [
      m[1],
      (m[2] ?? '').replaceAll("'\\''", "'"),
    ]);
    const top = pages.get('')?.sections.get('Commands') ?? [];
    expect(listed).toEqual(top.map((i) => [i.term.split(' ')[0], i.description]));
  });

  test('every option of each command, its description and its choices', () => {
    const specs = zshSpecs(zsh);
    for (const [name, page] of pages) {
      const expected = (page.sections.get('Options') ?? []).flatMap((i) =>
        flagsOf(i.term).map((flag) => {
          const choices = choicesOf(i.description);
          return { flag, explanation: i.description, choices: choices?.join(' ') };
        }),
      );
      const actual = (specs.get(name) ?? []).map((s) => ({
        flag: s.flag,
        explanation: s.explanation,
        choices: /^\((.*)\)$/.exec(s.action)?.[1],
      }));
      expect({ name, options: actual }).toEqual({ name, options: expected });
    }
  });

  test('a completion made from a different program is caught', () => {
    const other = {
      ...model,
      options: model.options.map((o) => ({ ...o, description: `${o.description}!` })),
    };
    const top = zshSpecs(renderZsh(other))
      .get('')
      ?.map((s) => s.explanation);
    expect(top).not.toEqual(
      pages
        .get('')
        ?.sections.get('Options')
        ?.map((i) => i.description),
    );
  });
});
