"""Secret tokens (sessions, API keys) and their stored hashes.

Tokens carry 256 bits of randomness, so a single SHA-256 is the right stored form: it is
fast to look up and useless to whoever reads the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "ck_"
_API_KEY_DISPLAY = 8  # characters of the key shown in listings, after the prefix


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_api_key() -> tuple[str, str]:
    """A new API key and the prefix shown in listings (never enough to use it)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[: len(API_KEY_PREFIX) + _API_KEY_DISPLAY]


def csrf_token(secret: bytes, session_token: str) -> str:
    """A CSRF token bound to one session: an HMAC of the session token."""
    return hmac.new(secret, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()[:40]


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
