#!/usr/bin/env bash
# Installs what moat's tests need on a Debian machine, as root, only when something is missing:
# Debian packages (iptables with both backends, nftables for `nft monitor`, ipset, iproute2, a real dockerd, busybox for the
# test image, curl for the test client, dnsmasq as the DNS server the egress tests resolve
# through, visudo to check the CI example's sudoers file; debootstrap, lintian, man-db and zsh
# for the Debian package's tests) and the npm packages from the lock file. dnsmasq-base is the
# program alone: no service is installed or started.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in iptables-legacy-restore:iptables nft:nftables ipset:ipset ip:iproute2 dockerd:docker.io \
            busybox:busybox-static curl:curl nsenter:util-linux \
            ping:iputils-ping systemd-analyze:systemd ansible-playbook:ansible-core \
            dnsmasq:dnsmasq-base visudo:sudo dpkg-deb:dpkg debootstrap:debootstrap lintian:lintian \
            man:man-db zsh:zsh; do
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

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
