"""The SSH gateway: ssh, scp, sftp and rsync into projects with users' own keys."""
