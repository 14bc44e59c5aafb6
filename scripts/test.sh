#!/usr/bin/env bash
# Runs every test: type check, lint, build, then jest (unit, real-kernel and real-Docker tests).
# Ends with one line "N passed, N failed" that CI reads.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh || exit 1

status=0
npx tsc --noEmit -p . || status=1
npx eslint . || status=1
npx prettier --check . >/dev/null || { npx prettier --check . ; status=1; }
npm run -s build || status=1

node --experimental-vm-modules node_modules/jest/bin/jest.js --ci --json --outputFile=.test-results.json "$@"
jest_status=$?
[ $jest_status -eq 0 ] || status=1
node -e '
  const r = JSON.parse(require("fs").readFileSync(".test-results.json", "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
' || status=1
exit $status
