#!/bin/sh
# The hub pod's NFS server: render the export (docker/ganesha.conf, a template) for the
# clients in COCALC_NFS_CLIENTS, create the exported directories (owned by the projects'
# uid) and run nfs-ganesha in the foreground, logging to stdout.
#
#   cocalc-nfs-start            render into $GANESHA_CONFIG, then run nfs-ganesha
#   cocalc-nfs-start --render   print the rendered configuration and exit
#
# COCALC_NFS_CLIENTS (required): comma-separated IPv4/IPv6 addresses or CIDRs of the nodes
# (the kubelets mount the export; project pods never reach it). No default: an export
# open to every client is what this refuses to start.
set -eu
uid="${COCALC_PROJECT_UID:-2001}"
gid="${COCALC_PROJECT_GID:-2001}"
template="${GANESHA_TEMPLATE:-/etc/ganesha/ganesha.conf}"
config="${GANESHA_CONFIG:-/var/run/ganesha/ganesha.conf}"

fail() {
    echo "cocalc-nfs-start: $*" >&2
    exit 2
}

clients="$(printf '%s' "${COCALC_NFS_CLIENTS:-}" | tr -d ' \t\n')"
[ -n "$clients" ] || fail "COCALC_NFS_CLIENTS is not set: give the nodes' addresses or CIDRs (docs/kubernetes.md)"
case "$clients" in
    ,* | *,) fail "COCALC_NFS_CLIENTS: '$clients' has an empty entry" ;;
esac
old_ifs="$IFS"
IFS=,
for client in $clients; do
    # Addresses and CIDRs only: nothing that could close the block or add a setting.
    case "$client" in
        "" | *[!0-9a-fA-F.:/]* | */*/*) fail "COCALC_NFS_CLIENTS: '$client' is not an address or CIDR" ;;
    esac
done
IFS="$old_ifs"
case "$uid$gid" in
    *[!0-9]*) fail "COCALC_PROJECT_UID and COCALC_PROJECT_GID must be numbers" ;;
esac

render() {
    sed -e "s|@CLIENTS@|$clients|g" -e "s|@UID@|$uid|g" -e "s|@GID@|$gid|g" "$template"
}

if [ "${1:-}" = "--render" ]; then
    render
    exit 0
fi
render >"$config"
for dir in /data/projects /data/ext; do
    [ -d "$dir" ] || install -d -o "$uid" -g "$gid" -m 0755 "$dir"
done
exec ganesha.nfsd -F -L /dev/stdout -f "$config" -p /var/run/ganesha/ganesha.pid
