"""How users reach the hub's SSH server: what the account page and the API show."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SshEndpoint:
    port: int
    """The port the SSH server listens on."""
    fingerprint: str
    """The host key's SHA256 fingerprint, for users to check on their first login."""
