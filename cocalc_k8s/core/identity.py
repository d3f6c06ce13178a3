"""Who is asking: the principal attached to an authenticated request, and the credential
that authorised it (what a revocation ends)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from cocalc_k8s.core.tokens import token_hash

CredentialKind = Literal["session", "api_key", "ssh_key"]


@dataclass(frozen=True, slots=True)
class Principal:
    account_id: uuid.UUID
    email: str
    name: str
    is_admin: bool
    via: CredentialKind
    # The session's cookie value (for CSRF tokens and sign-out) or the API key's id.
    credential: str


@dataclass(frozen=True, slots=True)
class Credential:
    """A reference to a session, an API key or an SSH key that can be kept and shown
    without granting anything: a session by the hex SHA-256 of its token (the database's
    key for it, never the token itself), an API key or an SSH key by its id."""

    kind: CredentialKind
    ref: str

    @classmethod
    def of(cls, principal: Principal) -> Credential:
        if principal.via == "session":
            return cls("session", token_hash(principal.credential).hex())
        return cls("api_key", principal.credential)
