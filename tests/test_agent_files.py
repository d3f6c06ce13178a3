"""The project agent over real HTTP: the token, file endpoints, Range, confinement, limits."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from cocalc_k8s.agent.launch import AgentProcess, start_agent
from cocalc_k8s.core.projectfs import TEMP_PREFIX

LIMIT = 1000


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """projects/p1 (this agent's home), projects/p2 (another project), outside.txt."""
    root = tmp_path_factory.mktemp("agent-files")
    home, other = root / "projects" / "p1", root / "projects" / "p2"
    (home / "sub").mkdir(parents=True)
    other.mkdir()
    (other / "secret.txt").write_text("other project")
    (root / "outside.txt").write_text("outside")
    (home / "to_outside").symlink_to(root / "outside.txt")
    (home / "to_other").symlink_to("../p2")
    (home / "sub" / "up").symlink_to("../../p2/secret.txt")
    (home / "to_sub").symlink_to("sub")
    return root


@pytest.fixture(scope="module")
def agent(root: Path) -> Iterator[AgentProcess]:
    process = start_agent(root / "projects" / "p1", args=["--max-upload-bytes", str(LIMIT)])
    yield process
    assert process.stop() == 0


@pytest.fixture
def home(root: Path) -> Path:
    return root / "projects" / "p1"


def files_url(agent: AgentProcess, path: str) -> URL:
    """The URL of /files/PATH with the path sent as is (dots encoded: no client-side
    normalisation of '..')."""
    encoded = quote(path, safe="/").replace(".", "%2E")
    return URL(f"{agent.url}/files/{encoded}", encoded=True)


def leftovers(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.name.startswith(TEMP_PREFIX)]


async def test_token_is_required(agent: AgentProcess) -> None:
    async with aiohttp.ClientSession(agent.url) as anonymous:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-of-enough-length"},
            {"Authorization": f"Bearer {agent.token}x"},
            {"Authorization": agent.token},
            {"Authorization": f"Basic {agent.token}"},
        ):
            for method, path in [
                ("GET", "/health"),
                ("GET", "/listing"),
                ("PUT", "/files/x.txt"),
                ("POST", "/exec"),
                ("GET", "/terminals/t"),
                ("GET", "/no-such-route"),
            ]:
                async with anonymous.request(method, path, headers=headers) as r:
                    assert r.status == 401, (method, path, headers)
                    assert await r.json() == {"error": "a valid bearer token is required"}
                    assert r.headers["WWW-Authenticate"] == "Bearer"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with aiohttp.ClientSession() as s, s.ws_connect(f"{agent.url}/terminals/t"):
            pass
    assert info.value.status == 401


async def test_health_and_usage(http: aiohttp.ClientSession) -> None:
    async with http.get("/health") as r:
        assert await r.json() == {"status": "ok"}
    async with http.get("/usage") as r:
        usage = await r.json()
    assert usage["memory_rss_bytes"] > 10_000_000
    assert usage["processes"] >= 1 and usage["cpu_seconds"] > 0
    assert usage["disk_bytes"] >= 0 and usage["terminals"] == 0


async def test_write_read_list_delete(
    http: aiohttp.ClientSession, agent: AgentProcess, home: Path
) -> None:
    async with http.put(files_url(agent, "docs/new dir/ü.txt"), data=b"hello world") as r:
        assert r.status == 200 and await r.json() == {"size": 11}
    assert (home / "docs" / "new dir" / "ü.txt").read_bytes() == b"hello world"
    async with http.get(files_url(agent, "docs/new dir/ü.txt")) as r:
        assert r.status == 200 and await r.read() == b"hello world"
        assert r.headers["Accept-Ranges"] == "bytes"
    async with http.get("/listing", params={"path": "docs"}) as r:
        entries = (await r.json())["entries"]
    assert [(e["name"], e["is_dir"]) for e in entries] == [("new dir", True)]
    async with http.get("/listing", params={"path": "docs/new dir"}) as r:
        [entry] = (await r.json())["entries"]
    assert entry["name"] == "ü.txt" and entry["size"] == 11 and entry["mtime"] > 0
    async with http.get("/listing") as r:
        names = [e["name"] for e in (await r.json())["entries"]]
    assert names[:3] == ["docs", "sub", "to_sub"] and "to_outside" in names
    async with http.delete(files_url(agent, "docs")) as r:
        assert r.status == 200
    assert not (home / "docs").exists()
    async with http.get(files_url(agent, "docs/new dir/ü.txt")) as r:
        assert r.status == 404 and "error" in await r.json()
    async with http.get(files_url(agent, "sub")) as r:
        assert r.status == 400
    async with http.delete(files_url(agent, "")) as r:
        assert r.status == 403


async def test_range_reads(http: aiohttp.ClientSession, agent: AgentProcess, home: Path) -> None:
    (home / "digits.txt").write_bytes(b"0123456789")
    url = files_url(agent, "digits.txt")
    for header, status, body, content_range in [
        ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-3", 206, b"789", "bytes 7-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("bytes=0-0,2-3", 200, b"0123456789", None),  # multi-range: the whole file
        ("lines=1-2", 200, b"0123456789", None),
    ]:
        async with http.get(url, headers={"Range": header}) as r:
            assert (r.status, await r.read()) == (status, body), header
            assert r.headers.get("Content-Range") == content_range
    async with http.get(url, headers={"Range": "bytes=10-"}) as r:
        assert r.status == 416 and r.headers["Content-Range"] == "bytes */10"


async def test_big_file_streams_both_ways(
    http: aiohttp.ClientSession, agent: AgentProcess, home: Path
) -> None:
    blob = os.urandom(3_000_000)
    (home / "big.bin").write_bytes(blob)
    async with http.get(files_url(agent, "big.bin")) as r:
        assert await r.read() == blob
    async with http.get(files_url(agent, "big.bin"), headers={"Range": "bytes=1000000-"}) as r:
        assert await r.read() == blob[1_000_000:]


async def test_files_ops(http: aiohttp.ClientSession, agent: AgentProcess, home: Path) -> None:
    (home / "ops").mkdir()
    (home / "ops" / "a.txt").write_text("A")

    async def op(body: dict[str, str]) -> tuple[int, dict[str, str]]:
        async with http.post("/files-ops", json=body) as r:
            return r.status, await r.json()

    assert await op({"op": "mkdir", "path": "ops/d/e"}) == (200, {"ok": True})
    assert (home / "ops" / "d" / "e").is_dir()
    assert (await op({"op": "copy", "src": "ops/a.txt", "dst": "ops/d/b.txt"}))[0] == 200
    assert (await op({"op": "copy", "src": "ops/d", "dst": "ops/d2"}))[0] == 200
    assert (home / "ops" / "d2" / "b.txt").read_text() == "A"
    assert (await op({"op": "move", "src": "ops/a.txt", "dst": "ops/moved/a.txt"}))[0] == 200
    assert (home / "ops" / "moved" / "a.txt").read_text() == "A"
    assert not (home / "ops" / "a.txt").exists()
    assert (await op({"op": "move", "src": "ops/d2", "dst": "ops/d"}))[0] == 409
    assert (await op({"op": "move", "src": "ops/nope", "dst": "ops/x"}))[0] == 404
    assert (await op({"op": "rename", "src": "a", "dst": "b"}))[0] == 400
    assert (await op({"op": "copy", "src": "a"}))[0] == 400
    async with http.post("/files-ops", data=b"not json") as r:
        assert r.status == 400


async def test_upload_limit_and_atomicity(
    http: aiohttp.ClientSession, agent: AgentProcess, home: Path
) -> None:
    (home / "keep.txt").write_bytes(b"old content")
    async with http.put(files_url(agent, "keep.txt"), data=b"x" * (LIMIT + 1)) as r:
        assert r.status == 413 and "limit" in (await r.json())["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while streaming
        for _ in range(3):
            yield b"y" * 600

    async with http.put(files_url(agent, "keep.txt"), data=chunks()) as r:
        assert r.status == 413
    assert (home / "keep.txt").read_bytes() == b"old content"
    async with http.put(files_url(agent, "keep.txt"), data=b"z" * LIMIT) as r:
        assert r.status == 200
    assert (home / "keep.txt").read_bytes() == b"z" * LIMIT
    async with http.put(files_url(agent, "sub"), data=b"not over a directory") as r:
        assert r.status == 400
    assert leftovers(home) == []


ESCAPES = [
    "../p2/secret.txt",
    "sub/../../p2/secret.txt",
    "/etc/passwd",
    "to_outside",
    "to_other/secret.txt",
    "sub/up",
    "to_sub/../../outside.txt",
]


@pytest.mark.parametrize("path", [*ESCAPES, "nul\x00byte", "x" * 300])
async def test_every_operation_refuses_escapes(
    http: aiohttp.ClientSession, agent: AgentProcess, root: Path, path: str
) -> None:
    refused = (400, 403)

    async def status(method: str, url: str | URL, **kw: object) -> int:
        async with http.request(method, url, **kw) as r:  # type: ignore[arg-type]
            assert "error" in await r.json()
            return r.status

    assert await status("GET", "/listing", params={"path": path}) in refused
    assert await status("GET", files_url(agent, path)) in refused
    assert await status("PUT", files_url(agent, path), data=b"pwned") in refused
    assert await status("PUT", files_url(agent, f"{path}/x"), data=b"pwned") in refused
    for body in (
        {"op": "mkdir", "path": f"{path}/d"},
        {"op": "copy", "src": "sub", "dst": f"{path}/copied"},
        {"op": "move", "src": "sub", "dst": f"{path}/moved"},
        {"op": "copy", "src": f"{path}/..", "dst": "copied"},
    ):
        assert await status("POST", "/files-ops", json=body) in refused, body
    assert await status("POST", "/exec", json={"command": "pwd", "cwd": path}) in refused
    if not path.startswith(("to_outside", "sub/up")):  # those links may be removed themselves
        assert await status("DELETE", files_url(agent, path)) in refused
    assert (root / "projects" / "p2" / "secret.txt").read_text() == "other project"
    assert (root / "outside.txt").read_text() == "outside"
    assert (root / "projects" / "p1" / "sub").is_dir()
    assert sorted(p.name for p in (root / "projects" / "p2").iterdir()) == ["secret.txt"]


async def test_unknown_route_and_method_are_json(http: aiohttp.ClientSession) -> None:
    async with http.get("/nope") as r:
        assert r.status == 404 and await r.json() == {"error": "Not Found"}
    async with http.post("/listing") as r:
        assert r.status == 405 and "error" in await r.json()
