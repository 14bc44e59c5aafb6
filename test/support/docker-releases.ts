/**
 * The Docker releases the tests and the exposure benchmark run: a release and the firewall
 * backend it starts with (a "target"), and where each release's binaries are. No test framework
 * here, so the benchmark (scripts/bench/exposure.ts) can start a real daemon too.
 *
 * The releases come from ../shared/docker/release.sh, which fetches and caches each one; the
 * script is found through MOAT_DOCKER_RELEASE_SH or next to the repository.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export type DockerRelease = '20.10.24' | '26.1.5' | '28.5.2' | '29.7.2';
export type FirewallBackend = 'iptables' | 'nftables';

export interface DockerTarget {
  /** `28.5.2`, `29.7.2-nftables`: the name MOAT_DOCKER and test titles use. */
  readonly name: TargetName;
  readonly release: DockerRelease;
  readonly firewallBackend: FirewallBackend;
  /** Docker 27+: ip6tables is on, so a network created with `--ipv6` is DNATed over IPv6. */
  readonly ip6tablesByDefault: boolean;
  /** Docker 28+: DOCKER-FORWARD, and raw PREROUTING drops of direct access (iptables backend). */
  readonly dockerForward: boolean;
  /** Docker 27+: `com.docker.network.bridge.gateway_mode_ipv4/ipv6` network options. */
  readonly gatewayModes: boolean;
  /** False under the nftables backend: moat hooks FORWARD itself. */
  readonly dockerUser: boolean;
}

function target(
  release: DockerRelease,
  firewallBackend: FirewallBackend = 'iptables',
): DockerTarget {
  const major = Number(release.split('.')[0]);
  return {
    name: (firewallBackend === 'iptables' ? release : `${release}-nftables`) as TargetName,
    release,
    firewallBackend,
    ip6tablesByDefault: major >= 27,
    dockerForward: major >= 28,
    gatewayModes: major >= 27,
    dockerUser: firewallBackend === 'iptables',
  };
}

export const TARGETS = {
  '20.10.24': target('20.10.24'),
  '26.1.5': target('26.1.5'),
  '28.5.2': target('28.5.2'),
  '29.7.2': target('29.7.2'),
  '29.7.2-nftables': target('29.7.2', 'nftables'),
} as const;
export type TargetName = '20.10.24' | '26.1.5' | '28.5.2' | '29.7.2' | '29.7.2-nftables';

/** Debian 12's own docker.io: what a test gets when it names no target. */
export const DEFAULT_TARGET: DockerTarget = TARGETS['20.10.24'];
export const ALL_TARGETS: readonly TargetName[] = Object.keys(TARGETS) as TargetName[];

const REPO = resolve(import.meta.dirname, '../..');

/** release.sh: MOAT_DOCKER_RELEASE_SH, else `shared/docker/` beside the repository, its parent, or /work. */
export function releaseScript(): string | undefined {
  const candidates = [
    process.env.MOAT_DOCKER_RELEASE_SH,
    resolve(REPO, '../shared/docker/release.sh'),
    resolve(REPO, '../../shared/docker/release.sh'),
    // The test machines' copy, for a clone made anywhere else (CI's clean clone).
    '/work/shared/docker/release.sh',
  ];
  return candidates.find((c): c is string => c !== undefined && c !== '' && existsSync(c));
}

const resolved = new Map<DockerRelease, { bin?: string; error?: string }>();

/**
 * The directory holding this release's dockerd (and docker-proxy, runc where it brings its own),
 * to put first on the daemon's PATH; undefined for Debian 12's own, already on PATH. Throws with
 * release.sh's words when the release cannot be had.
 */
export function dockerBinDir(release: DockerRelease): string | undefined {
  const known = resolved.get(release) ?? resolveRelease(release);
  resolved.set(release, known);
  if (known.error !== undefined) throw new Error(known.error);
  return known.bin;
}

function resolveRelease(release: DockerRelease): { bin?: string; error?: string } {
  const script = releaseScript();
  if (script === undefined)
    return {
      error: `Docker ${release}: release.sh not found (set MOAT_DOCKER_RELEASE_SH, see ../shared/docker/README.md)`,
    };
  // The first fetch of a release downloads a few tens of MB; scripts/install-test-deps.sh does it up front.
  const result = spawnSync('bash', [script, release], { encoding: 'utf8', timeout: 900_000 });
  if (result.status !== 0)
    return {
      error: `Docker ${release}: ${script} failed (exit ${result.status ?? 'signal'}): ${(result.stderr || result.error?.message || '').trim()}`,
    };
  const root = result.stdout.trim();
  return root === '' ? {} : { bin: `${root}/usr/sbin` };
}
