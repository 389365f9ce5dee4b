#!/usr/bin/env bash
# npm test: installs what is missing, brings up the local stack, runs lint, type-check and every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/bootstrap.mjs
exec node_modules/.bin/tsx scripts/run-tests.ts "$@"
