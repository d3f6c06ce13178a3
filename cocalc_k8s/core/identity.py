"""Who is asking: the principal attached to an authenticated request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Principal:
    account_id: uuid.UUID
    email: str
    name: str
    is_admin: bool
    via: Literal["session", "api_key"]
    # The session's cookie value (for CSRF tokens and sign-out) or the API key's id.
    credential: str
