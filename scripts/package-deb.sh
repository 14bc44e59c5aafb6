#!/usr/bin/env bash
# Builds moat_VERSION_all.deb from the built tree with dpkg-deb alone (no debhelper, no root:
# --root-owner-group). `npm run package` builds first, then runs this.
#
#   bash scripts/package-deb.sh [OUTDIR]      # default dist/; prints the .deb's path
#
# What goes where is listed in packaging/README.md. The man page and the completions are
# generated from the CLI's own command definitions (scripts/gen-cli-docs.mjs), the copyright
# file from the bundle's inputs (scripts/deb-copyright.mjs). Set SOURCE_DATE_EPOCH to fix the
# dates (default: the last commit's), so the same commit gives the same package.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)

for f in dist/bundle/main.js dist/cli/main.js dist/bundle-meta.json; do
  [ -e "$f" ] || { echo "$f is missing: run \`npm run build\` first (\`npm run package\` does)" >&2; exit 1; }
done
command -v dpkg-deb >/dev/null || { echo "dpkg-deb is missing (Debian package dpkg)" >&2; exit 1; }

version=$(node -p 'require("./package.json").version')
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
stage=$(mktemp -d "${TMPDIR:-/tmp}/moat-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
umask 022
r=$stage/root
doc=$r/usr/share/doc/moat

# The program: the bundle and bin/moat exactly as the repository runs them, under /usr/lib/moat.
# package.json says "type": "module" for both (Node.js runs an extensionless ES module from
# 18.19 on); /usr/bin/moat links to bin/moat, whose real path Node.js resolves.
install -d "$r/usr/lib/moat/bin" "$r/usr/lib/moat/dist/bundle" "$r/usr/bin"
install -m 0755 bin/moat "$r/usr/lib/moat/bin/moat"
install -m 0644 dist/bundle/*.js "$r/usr/lib/moat/dist/bundle/"
printf '{ "name": "moat", "version": "%s", "private": true, "type": "module" }\n' "$version" \
  > "$r/usr/lib/moat/package.json"
ln -s ../lib/moat/bin/moat "$r/usr/bin/moat"

install -D -m 0644 schemas/firewall.schema.json "$r/usr/share/moat/firewall.schema.json"

# Man page and completions from the commander program behind `--help`.
node scripts/gen-cli-docs.mjs "$stage/cli-docs" >/dev/null
install -D -m 0644 "$stage/cli-docs/moat.1" "$r/usr/share/man/man1/moat.1"
gzip -9n "$r/usr/share/man/man1/moat.1"
install -D -m 0644 "$stage/cli-docs/moat.bash" "$r/usr/share/bash-completion/completions/moat"
install -D -m 0644 "$stage/cli-docs/_moat" "$r/usr/share/zsh/vendor-completions/_moat"

# The example units, pointed at /usr/bin/moat. /lib, not /usr/lib: bookworm's lintian wants
# units there, and on a merged /usr (Debian 12 and later) both are the same directory.
install -d "$r/lib/systemd/system"
for unit in examples/systemd/*.service examples/systemd/*.timer; do
  sed -e 's|/usr/local/bin/moat|/usr/bin/moat|g' -e 's|^\[Unit\]$|&\nDocumentation=man:moat(1)|' \
    "$unit" > "$r/lib/systemd/system/$(basename "$unit")"
done
if grep -rq /usr/local/bin "$r/lib/systemd/system"; then
  echo "a unit still names /usr/local/bin" >&2; exit 1
fi

# The units with an [Install] section have no init.d script: hosts without systemd use
# examples/systemd/cron.example instead.
install -D -m 0644 packaging/debian/lintian-overrides "$r/usr/share/lintian/overrides/moat"

install -D -m 0644 packaging/firewall.yaml "$r/etc/moat/firewall.yaml"
install -d -m 0755 "$r/var/lib/moat"

# Documentation: README.md links docs/…, so they keep their relative places; examples as they
# are in the repository (the bundled snapshot included, for `moat plan --state`).
install -D -m 0644 README.md "$doc/README.md"
install -D -m 0644 -t "$doc/docs" docs/*.md
cp -r examples "$doc/examples"
find "$doc/examples" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
node scripts/deb-copyright.mjs > "$doc/copyright"
maintainer=$(sed -n 's/^Maintainer: //p' packaging/debian/control.in)
{
  printf 'moat (%s) unstable; urgency=medium\n\n' "$version"
  printf '  * moat %s, packaged from its repository; its git log has the changes.\n\n' "$version"
  printf ' -- %s  %s\n' "$maintainer" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$doc/changelog.gz"

# Control files.
install -d "$r/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$r/DEBIAN/"
echo /etc/moat/firewall.yaml > "$r/DEBIAN/conffiles"
size=$(du -s -k --apparent-size --exclude=DEBIAN "$r" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$size/" packaging/debian/control.in \
  > "$r/DEBIAN/control"
(cd "$r" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$r/DEBIAN/control" "$r/DEBIAN/conffiles" "$r/DEBIAN/md5sums"

deb=$out/moat_${version}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$r" "$deb" >/dev/null
echo "$deb"
