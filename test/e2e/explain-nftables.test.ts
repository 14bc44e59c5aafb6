/**
 * Docker 29's nftables firewall backend keeps its rules in nft tables iptables-save does not
 * show: on such a host every answer of `moat explain` is "unknown", naming why, even though
 * iptables' tables alone would say "reachable". Real daemon, real snapshot, real packet.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { describe } from '@jest/globals';
import { DockerSandbox, WAN_V4 } from '../support/docker-sandbox.js';
import { dockerRelease } from '../support/docker-release.js';
import { moat, PolicyDir } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'busybox', 'curl'] as const;
const RELEASE = '29.7.2';
const available = dockerRelease(RELEASE);

const body = (): void => {
  let sandbox: DockerSandbox | undefined;
  const scratch = new PolicyDir();

  beforeAll(async () => {
    if (available instanceof Error) throw available;
    const started = await DockerSandbox.start({
      daemonArgs: ['--firewall-backend=nftables'],
      ipForward: true,
      ...(available.binDir === undefined ? {} : { binDir: available.binDir }),
    });
    sandbox = started;
    started.runHttpd('ghost', ['2368:2368']);
  }, 300_000);

  afterAll(async () => {
    scratch.remove();
    await sandbox?.stop();
  }, 120_000);

  test('the answer is unknown and says why; the packet does get through', () => {
    if (sandbox === undefined) throw new Error('no sandbox');
    const snapshot = `${scratch.dir}/snapshot`;
    const taken = moat(sandbox, ['snapshot', '--out', snapshot], sandbox.env);
    expect(taken.status).toBe(0);
    const r = moat(
      sandbox,
      [
        'explain',
        '--snapshot',
        snapshot,
        '-f',
        scratch.file,
        '--from',
        WAN_V4,
        '--to',
        'ghost:2368/tcp',
      ],
      sandbox.env,
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('IPv4: unknown');
    expect(r.stdout).toContain(
      'Docker runs its nftables firewall backend: its rules live in the nft tables `ip docker-bridges` and `ip6 docker-bridges`',
    );
    expect(sandbox.httpStatusFromWan('http://198.51.100.1:2368/')).not.toBe('000');
  });
};

if (available instanceof Error && process.env.CI !== 'true')
  describe.skip(
    `explain on Docker ${RELEASE}'s nftables backend [skipped: ${available.message}]`,
    body,
  );
else describeWith(NEEDS, `explain on Docker ${RELEASE}'s nftables backend`, body);
