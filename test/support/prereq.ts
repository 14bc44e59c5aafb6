/**
 * Tests that need root, iptables, ipset or Docker. Outside CI a missing prerequisite skips the
 * test with a reason; under CI=true it fails loudly, because a skipped test proves nothing.
 */
import { execFileSync } from 'node:child_process';
import { describe, test } from '@jest/globals';

export type Prerequisite =
  | 'root'
  | 'iptables'
  | 'iptables-legacy'
  | 'nft'
  | 'ipset'
  | 'ip'
  | 'dockerd'
  | 'busybox'
  | 'curl'
  | 'systemd-analyze'
  | 'ansible-playbook'
  | 'visudo'
  | 'dnsmasq'
  | 'dpkg-deb'
  | 'lintian'
  | 'debootstrap'
  | 'man'
  | 'zsh'
  | 'ulogd'
  | 'hping3';

const COMMANDS: Record<Exclude<Prerequisite, 'root'>, string> = {
  iptables: 'iptables-nft-restore',
  'iptables-legacy': 'iptables-legacy-restore',
  nft: 'nft',
  ipset: 'ipset',
  ip: 'ip',
  dockerd: 'dockerd',
  busybox: 'busybox',
  curl: 'curl',
  'systemd-analyze': 'systemd-analyze',
  'ansible-playbook': 'ansible-playbook',
  visudo: 'visudo',
  dnsmasq: 'dnsmasq',
  'dpkg-deb': 'dpkg-deb',
  lintian: 'lintian',
  debootstrap: 'debootstrap',
  man: 'man',
  zsh: 'zsh',
  ulogd: 'ulogd',
  hping3: 'hping3',
};

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The prerequisites that are missing on this machine. */
export function missing(needs: readonly Prerequisite[]): Prerequisite[] {
  return needs.filter((need) =>
    need === 'root' ? process.getuid?.() !== 0 : !hasCommand(COMMANDS[need]),
  );
}

/** Why tests needing `needs` cannot run here, or undefined when they can. */
export function missingReason(needs: readonly Prerequisite[]): string | undefined {
  const absent = missing(needs);
  return absent.length === 0
    ? undefined
    : `missing prerequisite(s): ${absent.join(', ')} (run the tests as root after scripts/install-test-deps.sh)`;
}

/**
 * `describe` when `reason` is undefined; otherwise `describe.skip` locally, and a failing
 * describe under CI=true.
 */
export function describeUnless(reason: string | undefined, name: string, body: () => void): void {
  if (reason === undefined) {
    describe(name, body);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      test(`prerequisites (${reason})`, () => {
        throw new Error(`CI=true and ${reason}`);
      });
    });
  } else {
    describe.skip(`${name} [skipped: ${reason}]`, body);
  }
}

/** `describe` when every prerequisite is present (see describeUnless). */
export function describeWith(needs: readonly Prerequisite[], name: string, body: () => void): void {
  describeUnless(missingReason(needs), name, body);
}
