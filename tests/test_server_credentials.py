"""Named servers' own credential (`cocalc_k8s.core.server_credentials`): what the agent
gives each server and what the proxy presents; the proxy's cookie merge; and code-server
through the hub, where a request that does not come through the proxy is refused.

code-server itself is not installed here: a stand-in (`STAND_IN`) takes its command line
and applies its rule for a hashed password that is not an Argon2 hash (the session cookie
must equal HASHED_PASSWORD), reading the first cookie of that name, as its cookie parser
does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.core.server_credentials import request_headers, server_environment
from cocalc_k8s.keys import CONTENT_ORIGINS
from cocalc_k8s.proxy.messages import RequestHead, upstream_request
from cocalc_k8s.proxy.routing import parse_route
from tests.conftest import sign_up
from tests.localhost import localhost_session
from tests.test_lifecycle import wait_state
from tests.test_projects_api import User, new_project

TOKEN = "k" * 43


def test_each_server_gets_its_credential_in_its_environment_and_in_requests() -> None:
    assert server_environment("jupyterlab", TOKEN) == {"JUPYTER_TOKEN": TOKEN}
    assert server_environment("code", TOKEN) == {"HASHED_PASSWORD": TOKEN}
    assert request_headers("jupyter", TOKEN) == [(b"Authorization", b"token " + TOKEN.encode())]
    assert request_headers("code", TOKEN) == [(b"Cookie", b"code-server-session=" + b"k" * 43)]
    # An agent's answer is the project's: nothing that could end a header gets through.
    for bad in ("", "short", TOKEN + "\r\nX-Admin: 1", TOKEN + "; a=b", TOKEN + " "):
        assert request_headers("code", bad) == [] and request_headers("jupyter", bad) == []


def _head(headers: list[tuple[bytes, bytes]]) -> RequestHead:
    return RequestHead(
        method=b"GET",
        target=b"/",
        headers=[(b"Host", b"p.localhost"), *headers],
        client="127.0.0.1",
        scheme="http",
    )


def test_a_supplied_cookie_comes_first_and_replaces_only_its_namesake() -> None:
    route = parse_route("/00000000-0000-4000-8000-000000000000/port/code/")
    supplied = request_headers("code", TOKEN)
    browser = [(b"Cookie", b"theme=dark; code-server-session=forged; cocalc_content=grant")]
    head = upstream_request(_head(browser), route, path="/", extra=supplied).decode()
    cookies = [line for line in head.split("\r\n") if line.lower().startswith("cookie:")]
    assert cookies == [f"Cookie: code-server-session={TOKEN}; theme=dark"], head
    head = upstream_request(_head([]), route, path="/", extra=supplied).decode()
    assert f"\r\nCookie: code-server-session={TOKEN}\r\n" in head
    # Other credentials replace the client's header of the same name.
    jupyter = request_headers("jupyter", TOKEN)
    head = upstream_request(
        _head([(b"Authorization", b"token forged")]), route, path="/", extra=jupyter
    ).decode()
    assert "forged" not in head and f"Authorization: token {TOKEN}" in head


STAND_IN = r"""#!/usr/bin/python3
import http.server, os, sys
args = sys.argv[1:]
host, port = args[args.index("--bind-addr") + 1].rsplit(":", 1)
assert args[args.index("--auth") + 1] == "password", args
secret = os.environ["HASHED_PASSWORD"]

def session(header):
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "code-server-session":
            return value  # the first one wins
    return None

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        cookie = self.headers.get("Cookie", "")
        ok = session(cookie) == secret
        body = ("workbench; cookies: " + cookie if ok else "login").encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer((host, int(port)), Handler).serve_forever()
"""


@pytest.mark.timeout(120)
@pytest.mark.skipif(os.geteuid() != 0, reason="the test hub's sandbox runs as root")
async def test_code_server_refuses_requests_that_skip_the_proxy(
    make_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client()
    owner = User(client, await sign_up(client))
    project_id = await new_project(owner)
    home = tmp_path / "data" / "projects" / project_id
    # The stand-in is found on the project's PATH, in its home (the sandbox shows no more).
    monkeypatch.setenv("PATH", f"{home}/bin:{os.environ['PATH']}")
    await owner.call("POST", f"/api/v2/projects/{project_id}/start")
    await wait_state(owner, project_id, "running")
    install = (
        f"mkdir -p bin && cat > bin/code-server <<'EOF'\n{STAND_IN}EOF\nchmod +x bin/code-server"
    )
    status, body = await owner.call(
        "POST", f"/api/v2/projects/{project_id}/exec", {"command": install}
    )
    assert status == 200 and body["exit_code"] == 0, body
    _, key = await owner.call("POST", "/api/v2/api-keys", {"name": "code"})
    base = f"{client.app[CONTENT_ORIGINS].url_for(project_id)}/{project_id}/port/code"
    auth = {"Authorization": f"Bearer {key['key']}"}
    cookies = {"Cookie": "theme=dark; code-server-session=forged"}
    async with (
        localhost_session(headers=auth) as session,
        session.get(f"{base}/", headers=cookies) as resp,
    ):
        text = await resp.text()
        assert resp.status == 200, text
        assert text.startswith("workbench") and "theme=dark" in text and "forged" not in text

    find = "tr '\\0' ' ' < /proc/$(pgrep -f 'bin/code-server' | head -1)/cmdline"
    _, body = await owner.call("POST", f"/api/v2/projects/{project_id}/exec", {"command": find})
    cmdline = body["stdout"]
    port = int(cmdline.split("--bind-addr")[1].split()[0].rsplit(":", 1)[1])
    secret = text.split("code-server-session=")[1].split(";")[0]
    assert secret not in cmdline
    direct = f"python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:{port}/')\""
    _, body = await owner.call("POST", f"/api/v2/projects/{project_id}/exec", {"command": direct})
    assert body["exit_code"] != 0 and "401" in body["stderr"], body
    await owner.call("POST", f"/api/v2/projects/{project_id}/stop")
    await wait_state(owner, project_id, "stopped")
