"""HTTP clients that reach project origins under `localhost` as browsers do.

Browsers resolve every `*.localhost` name to the loopback address (RFC 6761); Python's
resolver does not, so these clients are told the address explicitly."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from cocalc_k8s.core.content_origin import is_loopback


def loopback(host: str) -> str:
    """The address to connect to for `host`: 127.0.0.1 for names under localhost."""
    return "127.0.0.1" if host.endswith("localhost") and is_loopback(host) else host


class LocalhostResolver(AbstractResolver):
    """`localhost` and `*.localhost` are 127.0.0.1; other names as usual."""

    def __init__(self) -> None:
        self._default = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.endswith("localhost") and is_loopback(host):
            address: ResolveResult = {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            return [address]
        return await self._default.resolve(host, port, family)

    async def close(self) -> None:
        await self._default.close()


def localhost_session(**kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp session that reaches `*.localhost` like a browser."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=LocalhostResolver()), **kwargs
    )
