"""The gateway to project agents: every call the hub makes to an agent goes through here,
with its token, timeouts, and agent failures turned into domain errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp

from cocalc_k8s.backends.base import AgentAddress
from cocalc_k8s.core.errors import BadGateway, BadRequest, DomainError, GatewayTimeout, NotFound

CONNECT_TIMEOUT = 5.0
_STATUS_ERRORS: dict[int, type[DomainError]] = {400: BadRequest, 404: NotFound}


class AgentClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=32),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def _headers(address: AgentAddress) -> dict[str, str]:
        return {"Authorization": f"Bearer {address.token}"}

    async def call(
        self,
        address: AgentAddress,
        method: str,
        path: str,
        *,
        body: Any = None,
        seconds: float = 30.0,
    ) -> Any:
        """One JSON request; the agent's 4xx errors keep their message."""
        try:
            async with self.session.request(
                method,
                address.url + path,
                json=body,
                headers=self._headers(address),
                timeout=aiohttp.ClientTimeout(total=seconds, sock_connect=CONNECT_TIMEOUT),
            ) as resp:
                text = await resp.text()
        except TimeoutError:
            raise GatewayTimeout("the project did not answer in time") from None
        except aiohttp.ClientError:
            raise BadGateway("the project does not answer") from None
        try:
            data = json.loads(text) if text else None
        except ValueError:
            raise BadGateway("the project answered something that is not JSON") from None
        if resp.status >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            error = _STATUS_ERRORS.get(resp.status, BadGateway)
            raise error(message or f"the project answered {resp.status}")
        return data

    async def terminal(self, address: AgentAddress, name: str) -> aiohttp.ClientWebSocketResponse:
        """Join the agent's terminal `name` (created on first join)."""
        try:
            return await self.session.ws_connect(
                f"{address.url}/terminals/{name}",
                headers=self._headers(address),
                heartbeat=30,
                max_msg_size=1 << 20,
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 400:
                raise BadRequest("invalid terminal name") from None
            raise BadGateway("the project's terminal does not answer") from None
        except (aiohttp.ClientError, TimeoutError):
            raise BadGateway("the project does not answer") from None


class HealthProbe:
    """What a backend uses to wait for an agent it started: until GET /health answers 200
    with the agent's token (the caller bounds the time). One small session, opened on
    first use."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def wait(self, address: AgentAddress) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        headers = {"Authorization": f"Bearer {address.token}"}
        delay = 0.005
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._session.get(address.url + "/health", headers=headers) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(delay)  # a retry interval, not synchronisation
            delay = min(delay * 2, 0.2)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
