"""The credential of a project's named server (Jupyter, JupyterLab, code-server): both
ends of one mechanism, pure.

The agent starts each named server with a secret of its own, new at every start, that the
server demands of every request (`server_environment`: it goes in the server's
environment, never in its arguments, which other users of a shared machine may read). The
agent tells the hub, and only the hub, that secret; the hub's proxy adds it to every
request it forwards after its own check of who asks (`request_headers`), and it never
reaches the browser. So even on a network the server shares with strangers (an
unsandboxed project, a pod network), a request that did not come through the proxy is
refused.

How each server takes it:

- Jupyter Server (``jupyter``, ``jupyterlab``): ``JUPYTER_TOKEN``, presented as
  ``Authorization: token T``;
- code-server (``code``): ``HASHED_PASSWORD`` (with ``--auth password``), presented as its
  session cookie. code-server compares that cookie with a hashed password that is not an
  Argon2 hash character for character, so the secret itself is the cookie's value, and its
  login page is never needed.

Other headers the proxy supplies to the same servers (the collaborator's signed identity
for Jupyter) go next to these, in the proxy.
"""

from __future__ import annotations

import re

NAMES = ("jupyter", "jupyterlab", "code")
CODE_SERVER_COOKIE = b"code-server-session"
# What `secrets.token_urlsafe` makes: nothing that could end a header or a cookie.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")


def valid_token(token: str) -> bool:
    """Whether `token` has the shape of a secret the agent makes."""
    return _TOKEN.fullmatch(token) is not None


def server_environment(name: str, token: str) -> dict[str, str]:
    """What the environment of named server `name` adds: its credential."""
    if name == "code":
        return {"HASHED_PASSWORD": token}
    return {"JUPYTER_TOKEN": token}


def request_headers(name: str, token: str) -> list[tuple[bytes, bytes]]:
    """The headers that present `token` to named server `name`; none for a token of the
    wrong shape (an agent is the project's: what it says is checked, not trusted)."""
    if not valid_token(token):
        return []
    if name == "code":
        return [(b"Cookie", CODE_SERVER_COOKIE + b"=" + token.encode())]
    return [(b"Authorization", b"token " + token.encode())]
