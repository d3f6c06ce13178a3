"""Signed, short-lived credentials for the content origin (pure).

The hub never sends its session cookie's power to project content. A visitor gets a
token bound to one account, one project and a purpose, signed with the hub's secret:

- `exchange` (60 s): put in the redirect from the hub origin to the content origin;
- `cookie` (hours): what the content origin keeps in its own cookie for that project.

Format: `v1.<purpose>.<account hex>.<project hex>.<expiry>.<hmac>`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

EXCHANGE_SECONDS = 60
COOKIE_SECONDS = 8 * 3600


@dataclass(frozen=True, slots=True)
class ContentGrant:
    account_id: uuid.UUID
    project_id: uuid.UUID
    expires: int


def _sign(secret: bytes, body: str) -> str:
    return hmac.new(secret, b"content:" + body.encode(), hashlib.sha256).hexdigest()[:43]


def issue(
    secret: bytes,
    purpose: str,
    account_id: uuid.UUID,
    project_id: uuid.UUID,
    *,
    lifetime: int,
    now: float | None = None,
) -> str:
    expires = int((now if now is not None else time.time()) + lifetime)
    body = f"v1.{purpose}.{account_id.hex}.{project_id.hex}.{expires}"
    return f"{body}.{_sign(secret, body)}"


def verify(
    secret: bytes, token: str, purpose: str, *, now: float | None = None
) -> ContentGrant | None:
    """The grant, or None if the token is malformed, forged, expired or for another use."""
    if len(token) > 200:
        return None
    body, _, signature = token.rpartition(".")
    if not hmac.compare_digest(signature.encode(), _sign(secret, body).encode()):
        return None
    try:
        version, kind, account_hex, project_hex, expiry = body.split(".")
        grant = ContentGrant(uuid.UUID(hex=account_hex), uuid.UUID(hex=project_hex), int(expiry))
    except ValueError:
        return None
    if version != "v1" or kind != purpose:
        return None
    if grant.expires < (now if now is not None else time.time()):
        return None
    return grant
