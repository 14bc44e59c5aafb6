/** What xtables-monitor's and nft monitor's lines say was changed (recorded from the real tools). */
import { describe, expect, test } from '@jest/globals';
import {
  nftMonitorHint,
  withinFamily,
  xtablesMonitorHint,
} from '../../src/netfilter/parse-monitor.js';

describe('xtablesMonitorHint', () => {
  test.each([
    [
      ' EVENT: -4 -t filter -N MOAT-FORWARD',
      { kind: 'chain', family: 'ipv4', chain: 'MOAT-FORWARD' },
    ],
    [
      ' EVENT: -4 -t filter -A DOCKER-USER -m comment --comment "moat:def" -j MOAT-FORWARD',
      { kind: 'chain', family: 'ipv4', chain: 'DOCKER-USER' },
    ],
    [
      ' EVENT: -6 -t filter -D MOAT-INPUT -p tcp -m comment --comment "moat:abc" -m tcp --dport 80 -j DROP',
      { kind: 'chain', family: 'ipv6', chain: 'MOAT-INPUT' },
    ],
    [
      ' EVENT: -4 -t filter -X MOAT-SRC-0e04c2b2ed',
      { kind: 'chain', family: 'ipv4', chain: 'MOAT-SRC-0e04c2b2ed' },
    ],
    [
      ' EVENT: # nft: ip filter INPUT use 2 type filter hook input prio 0 policy drop packets 0 bytes 0',
      { kind: 'chain', family: 'ipv4', chain: 'INPUT' },
    ],
    [
      ' EVENT: nft: DEL table: table filter ip flags 0 use 0 handle 1',
      { kind: 'family', family: 'ipv4' },
    ],
    [' EVENT: -6 -t filter -F', { kind: 'family', family: 'ipv6' }],
    [' EVENT: something new in a later release', { kind: 'anything' }],
  ])('%s', (line, hint) => {
    expect(xtablesMonitorHint(line)).toEqual(hint);
  });

  test.each([
    'NEWGEN: GENID=8 PID=29504 NAME=iptables',
    '',
    ' EVENT: -4 -t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 2368 -j DNAT --to-destination 172.17.0.2:2368',
    ' EVENT: nft: NEW table: table docker-bridges ip flags 0 use 0 handle 2',
    ' EVENT: # nft: ip docker-bridges filter-fwd use 3 type filter hook forward prio 0 policy accept',
    ' EVENT: -4 -t docker-bridges ',
  ])('says nothing of moat: %s', (line) => {
    expect(xtablesMonitorHint(line)).toBeUndefined();
  });
});

describe('nftMonitorHint', () => {
  test.each([
    [
      'create chain ip filter MOAT-FORWARD',
      { kind: 'chain', family: 'ipv4', chain: 'MOAT-FORWARD' },
    ],
    [
      'add rule ip filter MOAT-FORWARD meta l4proto tcp  tcp dport 80 counter packets 0 bytes 0 drop',
      { kind: 'chain', family: 'ipv4', chain: 'MOAT-FORWARD' },
    ],
    [
      'delete rule ip6 filter DOCKER-USER handle 6',
      { kind: 'chain', family: 'ipv6', chain: 'DOCKER-USER' },
    ],
    ['delete table ip filter', { kind: 'family', family: 'ipv4' }],
    ['something else entirely', { kind: 'anything' }],
  ])('%s', (line, hint) => {
    expect(nftMonitorHint(line)).toEqual(hint);
  });

  test.each([
    '# new generation 9 by process 29407 (nft)',
    'add rule ip nat DOCKER counter jump RETURN',
    'delete table ip docker-bridges',
    'add element inet fw4 blocked { 192.0.2.1 }',
  ])('says nothing of moat: %s', (line) => {
    expect(nftMonitorHint(line)).toBeUndefined();
  });
});

describe('withinFamily', () => {
  test('a source that tells of one family never asks for more than that family', () => {
    expect(withinFamily({ kind: 'anything' }, 'ipv6')).toEqual({ kind: 'family', family: 'ipv6' });
    const chain = { kind: 'chain', family: 'ipv6', chain: 'MOAT-INPUT' } as const;
    expect(withinFamily(chain, 'ipv6')).toBe(chain);
    expect(withinFamily(undefined, 'ipv6')).toBeUndefined();
  });
});
