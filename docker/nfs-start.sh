#!/bin/sh
# The hub pod's NFS server: create the exported directories (owned by the projects' uid)
# and run nfs-ganesha in the foreground, logging to stdout.
set -eu
uid="${COCALC_PROJECT_UID:-2001}"
gid="${COCALC_PROJECT_GID:-2001}"
for dir in /data/projects /data/ext; do
    [ -d "$dir" ] || install -d -o "$uid" -g "$gid" -m 0755 "$dir"
done
exec ganesha.nfsd -F -L /dev/stdout -f "${GANESHA_CONFIG:-/etc/ganesha/ganesha.conf}" \
    -p /var/run/ganesha/ganesha.pid
