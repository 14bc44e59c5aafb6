#!/bin/bash
# Runs inside a clean Debian root (test/package/debian-root.sh), as root, with no network: what
# an operator does with the package, from `apt install` to `apt purge`. Each step's stdout,
# stderr and exit status go to OUT/NAME.out, NAME.err and NAME.rc; test/package/deb.test.ts
# judges them. A failing step does not stop the ones after it.
#
#   bash scenario.sh /tmp/moat_VERSION_all.deb OUT
set -u
deb=$1
out=$2
mkdir -p "$out"
export MANWIDTH=80 MANPAGER=cat PAGER=cat

step() {
  local name=$1 started
  shift
  started=$(date +%s%N)
  "$@" > "$out/$name.out" 2> "$out/$name.err"
  echo $? > "$out/$name.rc"
  echo "$name $((($(date +%s%N) - started) / 1000000)) ms" >> "$out/timings.txt"
}

doc=/usr/share/doc/moat
packages() { dpkg-query -W -f '${Package}\n' | LC_ALL=C sort; }
# What of the package's own files (not the directories it shares) is still on disk.
leftovers() {
  while read -r path; do
    # Directories (and /lib, a link to one on a merged /usr) may be shared with other packages.
    [ -d "$path" ] && continue
    if [ -e "$path" ] || [ -L "$path" ]; then echo "$path"; fi
  done < "$out/files.out"
  for dir in /usr/lib/moat /usr/share/moat /usr/share/doc/moat /var/lib/moat; do
    [ -e "$dir" ] && echo "$dir"
  done
  return 0
}

step packages-before packages
cd "$(dirname "$deb")"
step install apt install -y --no-install-recommends "./$(basename "$deb")"
cd /
step status dpkg-query -W -f '${db:Status-Abbrev}${Version}' moat
step files dpkg -L moat
step conffiles dpkg-query -W -f '${Conffiles}' moat
step node-version node --version
step moat-path readlink -f /usr/bin/moat
step version moat --version
step help moat --help
step validate-etc moat validate -f /etc/moat/firewall.yaml
step validate-example moat validate -f $doc/examples/host-only-port/firewall.yaml
step plan-example moat plan -f $doc/examples/host-only-port/firewall.yaml \
  --snapshot $doc/examples/snapshot-docker-20.10
step plan-etc moat plan -f /etc/moat/firewall.yaml --snapshot $doc/examples/snapshot-docker-20.10
step man man moat
step bash-completion bash -c 'source /usr/share/bash-completion/completions/moat
  COMP_WORDS=(moat plan --backend ""); COMP_CWORD=3; _moat; echo "${COMPREPLY[*]}"'
step units bash -c 'ls /lib/systemd/system/moat-*'
step enabled bash -c 'find /etc/systemd -name "moat*"'

# The operator edits the policy, adds a policy of their own, enables the timer (the link
# `systemctl enable` makes; no systemd runs here) and moat records a run.
echo '# edited by the operator' >> /etc/moat/firewall.yaml
cp /etc/moat/firewall.yaml "$out/edited-policy.yaml"
printf 'version: 1\n' > /etc/moat/staging.yaml
mkdir -p /etc/systemd/system/timers.target.wants
ln -s /lib/systemd/system/moat-apply.timer /etc/systemd/system/timers.target.wants/moat-apply.timer
echo '{"runs":[]}' > /var/lib/moat/runs.json

step remove apt remove -y moat
step status-removed dpkg-query -W -f '${db:Status-Abbrev}' moat
step policy-removed cat /etc/moat/firewall.yaml
step leftovers-removed leftovers
step state-removed ls -A /var/lib/moat
step enabled-removed bash -c 'find /etc/systemd -name "moat*"'

step reinstall apt install -y --no-install-recommends "$(dirname "$deb")/$(basename "$deb")"
step policy-reinstalled cat /etc/moat/firewall.yaml
step version-reinstalled moat --version

step purge apt purge -y --autoremove moat
step status-purged dpkg-query -W moat
step etc-purged ls -A /etc/moat
step leftovers-purged leftovers
step enabled-purged bash -c 'find /etc/systemd -name "moat*"'
step packages-after packages
exit 0
