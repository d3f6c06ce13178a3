#!/usr/bin/env bash
# Rebuild cocalc_k8s/static/vendor/ from npm: exact versions from
# scripts/static/package-lock.json, bundled with esbuild into ES modules whose file
# names carry the library versions, licences in vendor/LICENSES.txt. The output is
# committed: running the hub never needs Node.js. To upgrade a library, change its
# version in scripts/static/package.json, run `npm install` there, then this script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/static"
npm ci --no-audit --no-fund
node build.mjs
