"""Jupyter's users are the hub's accounts: an `IdentityProvider` that trusts only the hub.

The hub's proxy adds two headers to every request it forwards to a project's Jupyter
server, after its own check that the visitor is a collaborator:

- ``Authorization: token T``: the server's own secret (``JUPYTER_TOKEN``, new at every
  start), which keeps out whoever finds the port without coming through the proxy;
- ``X-CoCalc-Identity: PAYLOAD.SIGNATURE``: who is asking, signed by the hub.

Jupyter runs as the project's uid, so any secret it holds can be read by the project's
code (``/proc/PID/environ``): the identity is therefore signed with a key only the hub
holds (Ed25519) and verified here with the public key, which is no secret. A process in
the project can send the token, but cannot make an identity: it is refused.

Format (the hub's side is ``cocalc_k8s.core.jupyter_identity``): ``PAYLOAD`` is the
unpadded base64url of a JSON object ``{"v": 1, "project": id, "account": id, "name":
str, "color": "#rrggbb", "exp": unix seconds}``; ``SIGNATURE`` the unpadded base64url
of the Ed25519 signature of ``CONTEXT + PAYLOAD``. An identity is valid for its project
only, until ``exp`` (a few minutes after signing; the proxy signs afresh before then).

The agent that starts Jupyter sets ``COCALC_IDENTITY_KEY`` (the raw public key,
base64url) and ``COCALC_PROJECT_ID`` in its environment and passes
``--ServerApp.identity_provider_class=cocalc_jupyter.identity.HubIdentityProvider``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jupyter_server.auth.identity import IdentityProvider, User

HEADER = "X-CoCalc-Identity"
CONTEXT = b"cocalc-k8s jupyter identity v1\n"
MAX_LIFETIME = 600.0  # seconds: what the hub may sign for at most
CLOCK_SKEW = 30.0  # seconds the hub's clock may be behind this machine's
MAX_TOKEN = 4096
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True, slots=True)
class Identity:
    account_id: str
    name: str
    color: str | None


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_public_key(text: str) -> Ed25519PublicKey:
    """The hub's public key from its text form (raw 32 bytes, base64url)."""
    return Ed25519PublicKey.from_public_bytes(_unb64(text.strip()))


def verify(
    token: str, *, public_key: Ed25519PublicKey, project_id: str, now: float
) -> Identity | None:
    """The identity `token` carries, or None unless the hub signed it for `project_id`
    and it has not expired at `now` (unix seconds)."""
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        return None
    payload, _, signature = token.partition(".")
    try:
        public_key.verify(_unb64(signature), CONTEXT + payload.encode("ascii"))
        claims = json.loads(_unb64(payload))
    except (InvalidSignature, binascii.Error, UnicodeError, ValueError):
        return None
    if not isinstance(claims, dict) or claims.get("v") != 1:
        return None
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or not now < expires <= now + MAX_LIFETIME + CLOCK_SKEW:
        return None
    account, name, color = claims.get("account"), claims.get("name"), claims.get("color")
    if claims.get("project") != project_id or not isinstance(account, str) or not account:
        return None
    if not isinstance(name, str):
        return None
    if not (isinstance(color, str) and _COLOR.fullmatch(color)):
        color = None
    return Identity(account, name.strip() or account, color)


def initials(name: str) -> str:
    """Up to two letters for an avatar: of the first two words of `name`."""
    words = [w for w in re.split(r"\s+", name) if w]
    return "".join(w[0] for w in words[:2]).upper() or "?"


class HubIdentityProvider(IdentityProvider):
    """A request is someone only with the server's token and a valid identity from the
    hub; everything else is no one (403). Users cannot change their name or colour here:
    both come from the hub."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.updatable_fields = []
        self._project_id = os.environ.get("COCALC_PROJECT_ID", "")
        key = os.environ.get("COCALC_IDENTITY_KEY", "")
        if not key or not self._project_id:
            raise RuntimeError(
                "COCALC_IDENTITY_KEY and COCALC_PROJECT_ID must be set: this Jupyter server "
                "is meant to be started by the cocalc-k8s project agent"
            )
        self._public_key = load_public_key(key)

    @property
    def login_available(self) -> bool:
        return False  # no login form: the hub signs in

    def get_user(self, handler: Any) -> User | None:
        cached = getattr(handler, "_jupyter_current_user", None)
        if cached:
            return cached  # type: ignore[no-any-return]
        token = self.get_token(handler) or ""
        if not self.token or not hmac.compare_digest(token.encode(), str(self.token).encode()):
            return None
        identity = verify(
            handler.request.headers.get(HEADER, ""),
            public_key=self._public_key,
            project_id=self._project_id,
            now=time.time(),
        )
        if identity is None:
            return None
        # Token-authenticated, as Jupyter's own check would record: the proxy checked the
        # Origin of WebSockets already, against the project's own origin.
        handler._token_authenticated = True
        return User(
            username=identity.account_id,
            name=identity.name,
            display_name=identity.name,
            initials=initials(identity.name),
            color=identity.color,
        )
