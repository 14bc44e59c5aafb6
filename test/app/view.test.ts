/**
 * The view: text for people, one JSON document (`--json`), or JSON lines (`--log-format json`);
 * a failure is reported in the view the command was asked for; colour follows NO_COLOR's rule.
 */
import { describe, expect, test } from '@jest/globals';
import { createView, wantsColor, type ViewKind } from '../../src/app/view.js';
import { ExitCode, InternalError, InvalidPolicyError, UserError } from '../../src/core/errors.js';
import { bufferContext } from '../support/app-context.js';

const NOW = new Date('2026-12-01T10:00:00.000Z');

function view(kind: ViewKind) {
  const { ctx, out, err } = bufferContext();
  return { view: createView(ctx.io, { kind, color: true, now: () => NOW }), out, err };
}

describe('wantsColor', () => {
  const on = { flag: true, terminal: true };
  test('an empty NO_COLOR does not count (no-color.org); a non-empty one does', () => {
    expect(wantsColor({ ...on, env: { NO_COLOR: '' } })).toBe(true);
    expect(wantsColor({ ...on, env: {} })).toBe(true);
    expect(wantsColor({ ...on, env: { NO_COLOR: '1' } })).toBe(false);
    expect(wantsColor({ ...on, env: { NO_COLOR: '0' } })).toBe(false);
  });
  test('never with --no-color or off a terminal', () => {
    expect(wantsColor({ flag: false, terminal: true, env: {} })).toBe(false);
    expect(wantsColor({ flag: true, terminal: false, env: {} })).toBe(false);
  });
});

describe('views', () => {
  test('the result: text, a JSON document, or one JSON line', () => {
    const text = view('text');
    text.view.result(
      () => 'Plan: 1 to add.\n',
      () => ({ a: 1 }),
    );
    expect(text.out()).toBe('Plan: 1 to add.\n');
    const json = view('json');
    json.view.result(
      () => 'x',
      () => ({ a: 1 }),
    );
    expect(json.out()).toBe('{\n  "a": 1\n}\n');
    const lines = view('json-lines');
    lines.view.result(
      () => 'x',
      () => ({ a: 1 }),
    );
    expect(lines.out()).toBe('{"a":1}\n');
  });

  test('notes are for people; events are for logs', () => {
    const text = view('text');
    text.view.note('Saved the plan.\n');
    text.view.event('apply', { result: 'changed' });
    expect(text.out()).toBe('Saved the plan.\n');
    const lines = view('json-lines');
    lines.view.note('Saved the plan.\n');
    lines.view.event('apply', { result: 'changed' });
    expect(JSON.parse(lines.out())).toEqual({
      level: 'info',
      event: 'apply',
      time: NOW.toISOString(),
      result: 'changed',
    });
    expect(view('json').view.color).toBe(false);
  });

  test('a user error: a message in text; a JSON document; a JSON line on stderr', () => {
    const error = new UserError(
      'cannot read policy file x.yaml: no such file',
      'policy-unreadable',
    );
    const text = view('text');
    expect(text.view.failure(error, { debug: false })).toBe(ExitCode.error);
    expect(text.err()).toBe('moat: cannot read policy file x.yaml: no such file\n');
    expect(text.out()).toBe('');

    const json = view('json');
    json.view.failure(error, { debug: false });
    expect(JSON.parse(json.out())).toEqual({
      error: { code: 'policy-unreadable', message: 'cannot read policy file x.yaml: no such file' },
    });
    expect(json.err()).toBe('moat: cannot read policy file x.yaml: no such file\n');

    const lines = view('json-lines');
    lines.view.failure(error, { debug: false });
    expect(lines.out()).toBe('');
    expect(JSON.parse(lines.err())).toMatchObject({
      level: 'error',
      event: 'error',
      code: 'policy-unreadable',
    });
  });

  test('an invalid policy: the JSON document carries its diagnostics', () => {
    const diagnostic = {
      file: 'f.yaml',
      line: 3,
      column: 5,
      severity: 'error' as const,
      code: 'schema',
      message: 'bad',
    };
    const json = view('json');
    json.view.failure(new InvalidPolicyError('f.yaml is not valid', [diagnostic]), {
      debug: false,
    });
    expect(JSON.parse(json.out())).toMatchObject({
      error: { code: 'invalid-policy', diagnostics: [diagnostic] },
    });
  });

  test('a bug says so, with the stack only under --debug; its exit code is 1', () => {
    const plain = view('text');
    expect(plain.view.failure(new InternalError('boom'), { debug: false })).toBe(ExitCode.error);
    expect(plain.err()).toContain('internal error (this is a bug): boom');
    expect(plain.err()).toContain('--debug');
    const debug = view('json');
    debug.view.failure(new TypeError('x is undefined'), { debug: true });
    expect(JSON.parse(debug.out())).toMatchObject({ error: { code: 'internal' } });
    expect(debug.err()).toContain('TypeError: x is undefined\n    at ');
  });

  test('a stale plan keeps its exit code (3) in every view', () => {
    for (const kind of ['text', 'json', 'json-lines'] as const) {
      const stale = new UserError('changed since', 'stale-plan', ExitCode.stalePlan);
      expect(view(kind).view.failure(stale, { debug: false })).toBe(ExitCode.stalePlan);
    }
  });
});
