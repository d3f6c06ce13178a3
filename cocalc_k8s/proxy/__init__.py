"""The authenticated reverse proxy to the web servers inside projects, served on the
content origin (a port or domain of its own, never the hub's origin)."""
