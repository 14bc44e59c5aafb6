#!/usr/bin/env bash
# Installs what moat's tests need on a Debian machine, as root, only when something is missing:
# Debian packages (iptables with both backends, ipset, iproute2, nftables, a real dockerd, busybox
# for the test image, curl for the test client, dnsmasq as the DNS server the egress tests resolve
# through, visudo to check the CI example's sudoers file; debootstrap, lintian, man-db and zsh
# for the Debian package's tests; ulogd2 to read moat's NFLOG drop logs, hping3 to flood them),
# promtool to check the metrics file, the other Docker releases the end-to-end tests run on
# (fetched once and cached by ../shared/docker/release.sh), and the npm packages from the lock
# file. dnsmasq-base is the program alone: no service is installed or started.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in iptables-legacy-restore:iptables ipset:ipset ip:iproute2 dockerd:docker.io \
            busybox:busybox-static curl:curl nsenter:util-linux nft:nftables \
            ping:iputils-ping systemd-analyze:systemd ansible-playbook:ansible-core \
            dnsmasq:dnsmasq-base visudo:sudo dpkg-deb:dpkg debootstrap:debootstrap lintian:lintian \
            man:man-db zsh:zsh ulogd:ulogd2 hping3:hping3; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if ! command -v node >/dev/null 2>&1; then need+=(nodejs npm); fi
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${need[*]}; run this script as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Docker releases of the e2e matrix (test/support/docker-targets.ts). A first fetch downloads
# Debian packages into the cache; later runs only check it. Under CI a release that cannot be had
# is an error here, before any test runs; elsewhere the tests that need it are skipped.
release_sh=${MOAT_DOCKER_RELEASE_SH:-}
if [ -z "$release_sh" ]; then
  for candidate in ../shared/docker/release.sh ../../shared/docker/release.sh /work/shared/docker/release.sh; do
    if [ -f "$candidate" ]; then release_sh=$candidate; break; fi
  done
fi
if [ -n "$release_sh" ] && [ "$(id -u)" = 0 ]; then
  for release in 26.1.5 28.5.2 29.7.2; do
    if ! bash "$release_sh" "$release" >/dev/null; then
      echo "Docker $release is not available (see $release_sh)" >&2
      [ "${CI:-}" != true ] || exit 1
    fi
  done
elif [ "${CI:-}" = true ]; then
  echo "CI=true: ../shared/docker/release.sh not found (set MOAT_DOCKER_RELEASE_SH) or not root" >&2
  exit 1
fi

# promtool: Debian ships it in the prometheus package, whose server the tests neither need nor
# should start; only that package's files are unpacked, under a cache the tests look in.
promtool_root=${MOAT_PROMTOOL_CACHE:-/var/cache/moat-test-promtool}
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$promtool_root/usr/bin/promtool" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "promtool is missing; run this script as root" >&2
    exit 1
  fi
  mkdir -p "$promtool_root.dl"
  (cd "$promtool_root.dl" && apt-get download prometheus >/dev/null 2>&1) || {
    apt-get update -qq && (cd "$promtool_root.dl" && apt-get download prometheus >/dev/null)
  }
  dpkg-deb -x "$(ls "$promtool_root".dl/prometheus_*.deb | head -n 1)" "$promtool_root"
  rm -rf "$promtool_root.dl"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
