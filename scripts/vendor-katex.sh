#!/usr/bin/env bash
# Rebuild cocalc_k8s/static/vendor/katex-$VERSION/ (the share pages' math) from npm:
# the distributed katex.min.js and katex.min.css, the woff2 fonts and the licence. The
# output is committed; running the hub never needs Node.js. To upgrade, change VERSION
# here and in templates/_share_head.html.
set -euo pipefail
VERSION=0.16.47
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/cocalc_k8s/static/vendor/katex-$VERSION"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "katex@$VERSION" >/dev/null && tar xzf "katex-$VERSION.tgz")
rm -rf "$out"
mkdir -p "$out/fonts"
cp "$work/package/dist/katex.min.js" "$work/package/dist/katex.min.css" "$work/package/LICENSE" "$out/"
cp "$work/package/dist/fonts/"*.woff2 "$out/fonts/"
# Gzipped twins, as for the other bundles (the hub sends them to browsers that accept gzip).
gzip -9 -n -k "$out/katex.min.js" "$out/katex.min.css"
echo "vendored KaTeX $VERSION in $out"
