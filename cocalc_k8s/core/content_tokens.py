"""Signed, short-lived credentials for the content origin (pure).

The hub never sends its session cookie's power to project content. A visitor gets a
token bound to one account, one project, a purpose and the credential it was granted
from (the session, or API key, that signed in on the hub origin), signed with the hub's
secret:

- `exchange` (60 s): put in the redirect from the hub origin to the content origin;
- `cookie` (hours): what the content origin keeps in its own cookie for that project.

A grant is only as good as its credential: the gate refuses it once that session is
signed out or revoked (a password change ends the other sessions; a ban all of them) or
that key deleted. The credential is named by the hash of the session token (the database's
key for it, which grants nothing) or the key's id, never by a secret.

Format: `v2.<purpose>.<account hex>.<project hex>.<expiry>.<s|k><credential>.<hmac>`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

from cocalc_k8s.core.identity import Credential

EXCHANGE_SECONDS = 60
COOKIE_SECONDS = 8 * 3600


@dataclass(frozen=True, slots=True)
class ContentGrant:
    account_id: uuid.UUID
    project_id: uuid.UUID
    expires: int
    credential: Credential


def _sign(secret: bytes, body: str) -> str:
    return hmac.new(secret, b"content:" + body.encode(), hashlib.sha256).hexdigest()[:43]


def issue(
    secret: bytes,
    purpose: str,
    account_id: uuid.UUID,
    project_id: uuid.UUID,
    *,
    credential: Credential,
    lifetime: int,
    now: float | None = None,
) -> str:
    expires = int((now if now is not None else time.time()) + lifetime)
    body = f"v2.{purpose}.{account_id.hex}.{project_id.hex}.{expires}.{_credential(credential)}"
    return f"{body}.{_sign(secret, body)}"


def verify(
    secret: bytes, token: str, purpose: str, *, now: float | None = None
) -> ContentGrant | None:
    """The grant, or None if the token is malformed, forged, expired or for another use."""
    if len(token) > 300:
        return None
    body, _, signature = token.rpartition(".")
    if not hmac.compare_digest(signature.encode(), _sign(secret, body).encode()):
        return None
    try:
        version, kind, account_hex, project_hex, expiry, credential = body.split(".")
        grant = ContentGrant(
            uuid.UUID(hex=account_hex),
            uuid.UUID(hex=project_hex),
            int(expiry),
            _parse_credential(credential),
        )
    except ValueError:
        return None
    if version != "v2" or kind != purpose:
        return None
    if grant.expires < (now if now is not None else time.time()):
        return None
    return grant


def _credential(credential: Credential) -> str:
    if credential.kind == "session":
        return "s" + credential.ref
    return "k" + uuid.UUID(credential.ref).hex


def _parse_credential(text: str) -> Credential:
    if text[:1] == "s" and len(text) == 65:
        bytes.fromhex(text[1:])  # ValueError unless hex
        return Credential("session", text[1:])
    if text[:1] == "k":
        return Credential("api_key", str(uuid.UUID(hex=text[1:])))
    raise ValueError("not a credential")
