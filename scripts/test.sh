#!/usr/bin/env bash
# npm test: installs what is missing, brings up the local stack, runs lint, type-check and every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/bootstrap.mjs
# The Node 24 that bootstrap installed (node_modules/.bin/node) first, as npm does for its scripts, also when this file
# is run directly.
export PATH="$PWD/node_modules/.bin:$PATH"
exec tsx scripts/run-tests.ts "$@"
