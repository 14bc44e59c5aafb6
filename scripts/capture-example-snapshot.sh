#!/usr/bin/env bash
# Captures examples/snapshot-docker-20.10 from a real Docker host: Debian 12's dockerd, run in a
# throwaway network namespace (as in ../shared/notes/test-sandbox.md), with the containers the
# examples name, then `moat snapshot`. Run it as root after `npm run build` when the examples
# change. It touches nothing outside the namespace and the temp dir it makes, and removes both.
#
#   bash scripts/capture-example-snapshot.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-examples/snapshot-docker-20.10}
ns=moat-capture-$$
tmp=$(mktemp -d /tmp/moat-capture-XXXXXX)
export DOCKER_HOST=unix://$tmp/docker.sock

cleanup() {
  set +e
  if [ -s "$tmp/docker.pid" ]; then
    pid=$(cat "$tmp/docker.pid")
    docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  for m in $(awk -v t="$tmp" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r); do umount -l "$m"; done
  ip netns del "$ns" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
# An outside link, so the host has an address clients would use.
ip -n "$ns" link add moat0 type veth peer name moat1
ip -n "$ns" addr add 198.51.100.1/24 dev moat0
ip -n "$ns" addr add 2001:db8:100::1/64 dev moat0 nodad
ip -n "$ns" link set moat0 up
ip netns exec "$ns" ipset create office-vpn hash:net family inet
ip netns exec "$ns" ipset add office-vpn 192.0.2.0/28

mkdir -p "$tmp/data" "$tmp/exec"
# userland-proxy off: what docs/policy.md recommends under defaults.ingress: host.
setsid nsenter --net="/var/run/netns/$ns" dockerd --data-root "$tmp/data" --exec-root "$tmp/exec" \
  -H "$DOCKER_HOST" --pidfile "$tmp/docker.pid" --userland-proxy=false \
  --containerd-namespace "$ns" --containerd-plugins-namespace "$ns-p" >"$tmp/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker info >/dev/null

mkdir -p "$tmp/img/bin" && cp "$(command -v busybox)" "$tmp/img/bin/"
for a in sh httpd sleep; do ln -s busybox "$tmp/img/bin/$a"; done
tar -C "$tmp/img" -c . | docker import - moat-example/busybox:latest >/dev/null

run() { docker run -d --name "$1" "${@:2}" moat-example/busybox httpd -f -p 80 -h / >/dev/null; }
docker network create appnet >/dev/null
docker network create --ipv6 --subnet fd00:db8:1::/64 v6net >/dev/null
run ghost -p 2368:80                                   # host-only-port
run postgres --network appnet                          # egress-allowlist-ipset: db
run mailer --network appnet                            # egress-allowlist-ipset: mailer
run webapp -p 80:80 -p 443:80                          # internal-network-blocked
run grafana -p 3000:80                                 # office-only-admin-external-ipset
run shop-frontend-1 --network appnet -p 8080:80 \
  -l com.docker.compose.project=shop -l com.docker.compose.service=frontend
run shop-api-1 --network appnet -p 9000:80 \
  -l com.docker.compose.project=shop -l com.docker.compose.service=api
run backups -l backup=true                             # compose-labels: backups
run web6 --network v6net -p 8443:80                    # an IPv6 network

mkdir -p "$out"
ip netns exec "$ns" env DOCKER_HOST="$DOCKER_HOST" ./bin/moat snapshot --out "$out"
echo "captured $(docker version --format '{{.Server.Version}}') into $out"
