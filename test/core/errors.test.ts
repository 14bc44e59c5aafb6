import { describe, expect, test } from '@jest/globals';
import { ExitCode, SubprocessError, UserError } from '../../src/core/errors.js';

describe('errors', () => {
  test('a user error carries its code and exit code', () => {
    const e = new UserError('cannot read plan file x.json', 'plan-unreadable');
    expect(e).toBeInstanceOf(Error);
    expect(e.source).toBe('user');
    expect(e.code).toBe('plan-unreadable');
    expect(e.exitCode).toBe(ExitCode.error);
    expect(e.name).toBe('UserError');
  });

  test('a failed subprocess names its command, exit code and stderr', () => {
    const e = new SubprocessError('iptables-restore --noflush', 2, 'line 3 failed\n');
    expect(e.message).toBe('iptables-restore --noflush failed (exit 2):\nline 3 failed');
  });
});
