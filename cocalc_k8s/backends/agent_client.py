"""The gateway to project agents: every call the hub makes to an agent goes through here,
with its token, timeouts, and agent failures turned into domain errors. Agents are reached
over TCP (pods) or over a Unix socket of the hub's (sandboxed local projects), through one
connector that keeps a pool per agent either way."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, cast

import aiohttp
from aiohttp.client_exceptions import UnixClientConnectorError
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.tracing import Trace

from cocalc_k8s.backends.base import AgentAddress, unix_host
from cocalc_k8s.core.errors import BadGateway, BadRequest, DomainError, GatewayTimeout, NotFound

CONNECT_TIMEOUT = 5.0
_STATUS_ERRORS: dict[int, type[DomainError]] = {400: BadRequest, 404: NotFound}


class AgentConnector(aiohttp.TCPConnector):
    """TCP, except for the host names that stand for an agent's Unix socket
    (`base.unix_host`): those connect to the socket. Names are learnt from the addresses
    used (`learn`), one per local project."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sockets: dict[str, str] = {}

    def learn(self, address: AgentAddress) -> None:
        if address.unix:
            self._sockets[unix_host(address.unix)] = address.unix

    async def _create_connection(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
    ) -> ResponseHandler:
        path = self._sockets.get(req.url.raw_host or "")
        if path is None:
            return await super()._create_connection(req, traces, timeout)
        try:
            async with asyncio.timeout(timeout.sock_connect):
                factory = cast(Callable[[], ResponseHandler], self._factory)
                _, proto = await self._loop.create_unix_connection(factory, path)
        except OSError as exc:
            raise UnixClientConnectorError(path, req.connection_key, exc) from exc
        return proto


def agent_session(**kwargs: Any) -> tuple[aiohttp.ClientSession, AgentConnector]:
    connector = AgentConnector(limit=0, limit_per_host=32)
    return aiohttp.ClientSession(connector=connector, **kwargs), connector


class AgentClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._connector: AgentConnector | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session, self._connector = agent_session(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
            )
        return self._session

    def _session_for(self, address: AgentAddress) -> aiohttp.ClientSession:
        session = self.session
        if address.unix:
            assert self._connector is not None
            self._connector.learn(address)
        return session

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
            async with self._session_for(address).request(
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

    async def watch(
        self, address: AgentAddress, *, after: int, instance: str, wait: float, max_bytes: int
    ) -> Any:
        """One long poll of the agent's file watcher (`cocalc_k8s.agent.watch`)."""
        query = f"/watch?after={after}&instance={instance}&timeout={wait}&max_bytes={max_bytes}"
        return await self.call(address, "GET", query, seconds=wait + 15.0)

    async def terminal(self, address: AgentAddress, name: str) -> aiohttp.ClientWebSocketResponse:
        """Join the agent's terminal `name` (created on first join)."""
        try:
            return await self._session_for(address).ws_connect(
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

    async def exec_stream(self, address: AgentAddress) -> aiohttp.ClientWebSocketResponse:
        """Open the agent's streamed exec (`cocalc_k8s.agent.exec_stream`); the caller
        sends the first message and owns the socket."""
        try:
            return await self._session_for(address).ws_connect(
                f"{address.url}/exec-stream",
                headers=self._headers(address),
                heartbeat=30,
                max_msg_size=2 << 20,
            )
        except (aiohttp.ClientError, TimeoutError):
            raise BadGateway("the project does not answer") from None


class HealthProbe:
    """What a backend uses to wait for an agent it started: until GET /health answers 200
    with the agent's token (the caller bounds the time). One small session, opened on
    first use."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._connector: AgentConnector | None = None

    async def wait(self, address: AgentAddress) -> None:
        if self._session is None:
            self._session, self._connector = agent_session(timeout=aiohttp.ClientTimeout(total=5))
        assert self._connector is not None
        self._connector.learn(address)
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
