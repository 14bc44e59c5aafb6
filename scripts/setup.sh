#!/usr/bin/env bash
# Installs moat's runtime needs on a Debian machine (Node.js when absent, the npm packages from
# the lock file) and builds it. Needs no iptables and no Docker: enough for validate and
# `plan --snapshot`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run -s build
