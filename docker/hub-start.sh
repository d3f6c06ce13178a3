#!/bin/sh
# The hub container's entry point: HTTPS with the certificate of the optional cocalc-tls
# Secret when it is mounted, a self-signed one (kept in the data directory) otherwise;
# then `cocalc-k8s "$@"` (e.g. serve --backend kubernetes).
set -eu
tls_dir="${COCALC_TLS_DIR:-/etc/cocalc/tls}"
if [ -z "${COCALC_TLS_CERT:-}" ] && [ -s "$tls_dir/tls.crt" ] && [ -s "$tls_dir/tls.key" ]; then
    export COCALC_TLS_CERT="$tls_dir/tls.crt" COCALC_TLS_KEY="$tls_dir/tls.key"
elif [ -z "${COCALC_TLS:-}" ] && [ -z "${COCALC_TLS_CERT:-}" ]; then
    export COCALC_TLS=self-signed
fi
exec cocalc-k8s "$@"
