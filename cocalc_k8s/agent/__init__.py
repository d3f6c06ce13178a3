"""The project agent: a small aiohttp server inside each project (a pod's main process, or
a child process of the hub's local backend). The hub is its only client.

It imports nothing from the hub: only the standard library, aiohttp, ptyprocess, psutil and
`cocalc_k8s.core`. Start it with ``python -m cocalc_k8s.agent --home DIR`` and the secret
token as the first line of stdin (or on ``--token-fd``); it prints ``{"port": N}``.
"""
