/** The daemon's release and firewall backend from `GET /info`. */
import { describe, expect, test } from '@jest/globals';
import { MoatError } from '../../src/core/errors.js';
import { daemonFromApi, infoForSnapshot } from '../../src/docker/daemon.js';

describe('daemonFromApi', () => {
  test('the release and the backend driver, as the daemon says them', () => {
    expect(
      daemonFromApi({ ServerVersion: '29.7.2', FirewallBackend: { Driver: 'nftables', Info: [] } }),
    ).toEqual({ version: '29.7.2', firewallBackend: 'nftables' });
    expect(
      daemonFromApi({ ServerVersion: '28.5.2', FirewallBackend: { Driver: 'iptables+firewalld' } }),
    ).toEqual({ version: '28.5.2', firewallBackend: 'iptables+firewalld' });
  });

  test('no FirewallBackend (before API 1.49): iptables, the only backend there was', () => {
    expect(daemonFromApi({ ServerVersion: '20.10.24+dfsg1' })).toEqual({
      version: '20.10.24+dfsg1',
      firewallBackend: 'iptables',
    });
  });

  test('anything else is a docker-api MoatError saying what is wrong', () => {
    for (const bad of [
      null,
      [],
      {},
      { ServerVersion: 7 },
      { ServerVersion: '1', FirewallBackend: {} },
    ]) {
      let error: unknown;
      try {
        daemonFromApi(bad);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(MoatError);
      expect((error as MoatError).code).toBe('docker-api');
    }
  });

  test('a snapshot keeps only the fields moat reads', () => {
    expect(
      infoForSnapshot({
        ServerVersion: '29.7.2',
        Name: 'db-host',
        ID: 'x',
        FirewallBackend: { Driver: 'nftables' },
      }),
    ).toEqual({ ServerVersion: '29.7.2', FirewallBackend: { Driver: 'nftables' } });
  });
});
