#!/usr/bin/env bash
# Installs a moat .deb into a clean Debian root as an operator would (test/package/scenario.sh)
# and copies what each step printed to OUTDIR, for test/package/deb.test.ts to check. As root.
#
#   bash test/package/debian-root.sh SUITE DEB OUTDIR        # SUITE: bookworm or trixie
#
# The root is made once per suite with `debootstrap --variant=minbase` from Debian's package
# registry, with man-db and the .deb's dependencies downloaded into its apt cache, and kept in
# $MOAT_DEB_ROOT_CACHE (default /var/cache/moat-test-deb): a later run needs no network. It is
# made again when the .deb's Depends change, when this recipe changes, or after 30 days (so a
# point release's nodejs arrives).
#
# Each run works on an overlay of the cached root (which it never changes), inside private
# mount, PID and network namespaces: the overlay, /proc and /dev/pts are mounted only there and
# vanish with the namespace however the run ends; processes started in the root die with it;
# the overlay's upper layer is deleted on exit. Debian's apt on this machine is not used: the
# root has its own apt configuration, and the machine's is never read or changed.
set -euo pipefail
suite=${1:?usage: debian-root.sh SUITE DEB OUTDIR}
deb=$(realpath "${2:?usage: debian-root.sh SUITE DEB OUTDIR}")
out=${3:?usage: debian-root.sh SUITE DEB OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
cache=${MOAT_DEB_ROOT_CACHE:-/var/cache/moat-test-deb}
mirror=http://deb.debian.org/debian
RECIPE=2 # change to rebuild every cached root
MAX_AGE_DAYS=30

[ "$(id -u)" = 0 ] || { echo "debian-root.sh must run as root" >&2; exit 1; }
for tool in debootstrap unshare chroot dpkg-deb flock; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (scripts/install-test-deps.sh)" >&2; exit 1; }
done

base=$cache/$suite
key="recipe=$RECIPE suite=$suite depends=$(dpkg-deb -f "$deb" Depends)"

log() { printf '[debian-root %s] %s\n' "$suite" "$*" >&2; }

# Inside a root being made: man-db (for `man moat`) and the .deb's dependencies, downloaded
# only. policy-rc.d keeps package scripts from starting services in the root.
prepare_root() {
  local root=$1
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  # A throwaway root needs no fsync after every file dpkg unpacks (a third of install time).
  echo force-unsafe-io > "$root/etc/dpkg/dpkg.cfg.d/moat-test-unsafe-io"
  cp "$deb" "$root/tmp/moat.deb"
  unshare --mount --propagation private -- bash -euc '
    root=$1
    mount -t proc proc "$root/proc"
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive bash -euc "
        echo \"man-db man-db/auto-update boolean false\" | debconf-set-selections
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends man-db >/dev/null
        apt-get install -y -qq --no-install-recommends --download-only /tmp/moat.deb >/dev/null
        rm -f /tmp/moat.deb
      "
  ' prepare "$root"
}

# Made under an exclusive lock; used under a shared one, held until this script exits, so a
# run never loses its lower layer to another run that makes the root again.
ensure_root() {
  exec 9>"$cache/$suite.lock"
  flock 9
  if [ -f "$base/.key" ] && [ "$(cat "$base/.key")" = "$key" ] &&
    [ -z "$(find "$base/.key" -mtime +"$MAX_AGE_DAYS")" ]; then
    flock -s 9
    return 0
  fi
  log "making a $suite root with debootstrap (once; cached in $base)"
  rm -rf "$base" "$base".new.*
  local new=$base.new.$$
  debootstrap --variant=minbase "$suite" "$new" "$mirror" > "$cache/$suite.debootstrap.log" 2>&1 ||
    { tail -20 "$cache/$suite.debootstrap.log" >&2; rm -rf "$new"; return 1; }
  prepare_root "$new" || { rm -rf "$new"; return 1; }
  echo "$key" > "$new/.key"
  mv "$new" "$base"
  flock -s 9
}

mkdir -p "$cache" "$out"
started=$(date +%s)
ensure_root
log "root ready in $(($(date +%s) - started)) s"

# Upper layers of runs that were killed before their trap ran (the mounts died with them).
find /var/tmp -maxdepth 1 -name 'moat-deb-run.*' -mmin +240 -exec rm -rf {} + 2>/dev/null || true
work=$(mktemp -d /var/tmp/moat-deb-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/upper" "$work/work" "$work/root"

# --kill-child: if this script dies, the namespace's processes die with it.
unshare --mount --propagation private --pid --fork --kill-child --net -- bash -euc '
  base=$1 work=$2 deb=$3 scenario=$4 out=$5
  root=$work/root
  mount -t overlay overlay -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/work" "$root"
  mount -t proc proc "$root/proc"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
  cp "$deb" "$root/tmp/"
  cp "$scenario" "$root/tmp/scenario.sh"
  status=0
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive bash /tmp/scenario.sh "/tmp/$(basename "$deb")" /tmp/out ||
    status=$?
  cp -r "$root/tmp/out/." "$out/"
  umount "$root/dev/pts" "$root/proc" "$root"
  exit $status
' run "$base" "$work" "$deb" "$here/scenario.sh" "$(realpath "$out")"
log "done in $(($(date +%s) - started)) s"
