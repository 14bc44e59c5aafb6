/**
 * The e2e matrix's plumbing: which targets MOAT_DOCKER selects, and a release that cannot be
 * had is an error with release.sh's own words (which describeOnDocker turns into a skip, or a
 * failure under CI=true).
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_TARGETS, dockerBinDir, selectedTargets, TARGETS } from '../support/docker-targets.js';

const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
});

describe('Docker targets', () => {
  test('each layout fact follows the release and backend', () => {
    expect(TARGETS['20.10.24']).toMatchObject({ ip6tablesByDefault: false, dockerUser: true });
    expect(TARGETS['28.5.2']).toMatchObject({ ip6tablesByDefault: true, dockerForward: true });
    expect(TARGETS['29.7.2-nftables']).toMatchObject({
      release: '29.7.2',
      firewallBackend: 'nftables',
      dockerUser: false,
    });
    expect(ALL_TARGETS).toHaveLength(5);
  });

  test('MOAT_DOCKER narrows the wanted targets; unset, all of them run; unknown names fail', () => {
    delete process.env.MOAT_DOCKER;
    expect(selectedTargets(['20.10.24', '28.5.2']).map((t) => t.name)).toEqual([
      '20.10.24',
      '28.5.2',
    ]);
    process.env.MOAT_DOCKER = '28.5.2, 29.7.2-nftables';
    expect(selectedTargets(['20.10.24', '28.5.2']).map((t) => t.name)).toEqual(['28.5.2']);
    process.env.MOAT_DOCKER = '28';
    expect(() => selectedTargets(['28.5.2'])).toThrow('MOAT_DOCKER names unknown targets: 28');
  });

  test('a release release.sh cannot give is an error carrying its words', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-release-'));
    try {
      const script = join(dir, 'release.sh');
      writeFileSync(script, '#!/bin/sh\necho "no network to fetch $1" >&2\nexit 1\n');
      chmodSync(script, 0o755);
      process.env.MOAT_DOCKER_RELEASE_SH = script;
      expect(() => dockerBinDir('26.1.5')).toThrow(
        /Docker 26\.1\.5: .* failed \(exit 1\): no network to fetch 26\.1\.5/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
