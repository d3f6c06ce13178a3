#!/usr/bin/env bash
# Rebuild cocalc_k8s/static/vendor/ from npm: exact versions from
# scripts/static/package-lock.json, bundled with esbuild into ES modules whose file
# names carry the library versions, licences in vendor/LICENSES.txt. The output is
# committed: running the hub never needs Node.js. It ends by running vendor-katex.sh. To upgrade a library, change its
# version in scripts/static/package.json, run `npm install` there, then this script.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/static"
npm ci --no-audit --no-fund
node build.mjs
# build.mjs empties vendor/ first; KaTeX (the share pages' math) is vendored separately.
"$here/vendor-katex.sh"
