/**
 * Docker 29's nftables firewall backend keeps its rules in nft tables iptables-save does not
 * show: on such a host every answer of `moat explain` is "unknown", naming why, even though
 * iptables' tables alone would say "reachable". Real daemon, real snapshot, real packet.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { DockerSandbox, WAN_V4 } from '../support/docker-sandbox.js';
import { describeOnDocker } from '../support/docker-targets.js';
import { moat, PolicyDir } from '../support/moat-cli.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'busybox', 'curl'] as const;

describeOnDocker(['29.7.2-nftables'], NEEDS, 'explain on the nftables backend', (target) => {
  let sandbox: DockerSandbox | undefined;
  const scratch = new PolicyDir();

  beforeAll(async () => {
    const started = await DockerSandbox.start({ target });
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
});
