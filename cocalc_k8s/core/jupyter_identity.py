"""Who a request to a project's Jupyter server comes from, signed by the hub (pure).

The proxy adds ``X-CoCalc-Identity`` to every request it forwards to a Jupyter server
(beside the server's token, see `cocalc_k8s.agent.named_servers`); the project's Jupyter
verifies it with ``cocalc_jupyter.identity`` (project-env/, installed with Jupyter),
which documents the format. The signing key is derived from the hub's secret key, so
every hub sharing that secret signs alike and nothing new is stored; only its public half
ever leaves the hub (to the agent, which hands it to Jupyter).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HEADER = b"X-CoCalc-Identity"
CONTEXT = b"cocalc-k8s jupyter identity v1\n"
LIFETIME = 300  # seconds; the proxy signs afresh after half of it
# The palette of the hub's pages (static/people.js): a person has one colour everywhere.
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b")


def signing_key(secret: bytes) -> Ed25519PrivateKey:
    """The hub's Ed25519 key for identities, derived from its secret key."""
    seed = hmac.new(secret, b"cocalc-k8s jupyter identity key", hashlib.sha256).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The public half as Jupyter's side reads it: the raw 32 bytes, base64url."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return _b64(raw)


def color_of(account_id: uuid.UUID) -> str:
    """The account's colour, as `colorOf` in static/people.js computes it."""
    hash_ = 0
    for ch in str(account_id):
        hash_ = (hash_ * 31 + ord(ch)) & 0xFFFFFFFF
    return COLORS[hash_ % len(COLORS)]


def sign_identity(
    key: Ed25519PrivateKey,
    *,
    project_id: uuid.UUID,
    account_id: uuid.UUID,
    name: str,
    now: float,
    lifetime: int = LIFETIME,
) -> str:
    """``PAYLOAD.SIGNATURE`` naming the account, valid for `project_id` until `now` +
    `lifetime`."""
    claims = {
        "v": 1,
        "project": str(project_id),
        "account": str(account_id),
        "name": name,
        "color": color_of(account_id),
        "exp": int(now) + lifetime,
    }
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = key.sign(CONTEXT + payload.encode("ascii"))
    return f"{payload}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
