/**
 * docs/operations.md, "Removing moat completely": its step 2 (an empty policy on stdin) and the
 * check after it, run as written, remove every chain, jump and ipset moat owns and nothing else.
 * The host is a namespace holding the bundled snapshot's rules; its containers come from a
 * socket serving the snapshot's.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveSnapshot, type FakeDockerApi } from '../support/fake-docker-api.js';
import { CLI, assertBuilt } from '../support/moat-cli.js';
import { NetNs } from '../support/netns.js';
import { describeWith } from '../support/prereq.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SNAPSHOT = join(ROOT, 'examples/snapshot-docker-20.10');
const POLICY = `version: 1
ipsets:
  office:
    entries: [198.51.100.0/24]
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host, ipset:office]
`;

/** The shell lines of the removal section's code block. */
function removalSteps(): string[] {
  const docs = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
  const section = docs.split(/^## /m).find((s) => s.startsWith('Removing moat completely')) ?? '';
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
}

describeWith(['root', 'ip', 'iptables', 'ipset'], 'removing moat as the docs say', () => {
  let dir = '';
  let ns: NetNs | undefined;
  let docker: FakeDockerApi | undefined;

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'moat-removal-'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(
      join(dir, 'bin', 'moat'),
      `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`,
    );
    chmodSync(join(dir, 'bin', 'moat'), 0o755);
    ns = NetNs.create('rm');
    ns.exec('iptables-nft-restore', [], readFileSync(join(SNAPSHOT, 'iptables-save.txt'), 'utf8'));
    docker = await serveSnapshot(SNAPSHOT, join(dir, 'docker.sock'));
  });

  afterAll(async () => {
    await docker?.close();
    ns?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A shell line in the host's namespace, moat on PATH; asynchronous: Docker is served here. */
  function sh(line: string, input = ''): Promise<{ status: number | null; out: string }> {
    const child = spawn(
      'ip',
      ['netns', 'exec', ns?.name ?? '', 'bash', '--norc', '--noprofile', '-c', line],
      {
        env: {
          PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}`,
          NO_COLOR: '1',
          DOCKER_HOST: docker?.env.DOCKER_HOST ?? '',
          MOAT_HISTORY_DIR: join(dir, 'history'),
          MOAT_LOCK_FILE: join(dir, 'moat.lock'),
        },
        timeout: 60_000,
      },
    );
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => out.push(c));
    child.stdin.end(input);
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (status) => {
        resolve({ status, out: Buffer.concat(out).toString('utf8') });
      });
    });
  }

  test('step 2 and its check, as written, leave no moat object and the rest as it was', async () => {
    const steps = removalSteps();
    const empty = steps.find((l) => l.includes("printf 'version: 1\\n' | moat apply -f -"));
    const check = steps.find((l) => l.startsWith('iptables-save | grep -c MOAT'));
    expect(empty).toBeDefined();
    expect(check).toBeDefined();

    const before = (await sh('iptables-save -t filter')).out;
    const applied = await sh('moat apply -f - --auto-approve', POLICY);
    expect(applied.status).toBe(0);
    const counts = (await sh(check ?? '')).out.trim().split('\n').map(Number);
    expect(counts).toHaveLength(3);
    for (const count of counts) expect(count).toBeGreaterThan(0);

    const removed = await sh(empty ?? '');
    expect(removed.out).toContain('Apply complete: 0 added, 0 changed, ');
    expect(removed.status).toBe(0);
    expect((await sh(check ?? '')).out).toBe('0\n0\n0\n');
    const strip = (t: string): string => t.replace(/^#.*\n/gm, '');
    expect(strip((await sh('iptables-save -t filter')).out)).toBe(strip(before));
  });
});
