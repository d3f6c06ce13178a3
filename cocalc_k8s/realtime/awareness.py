"""Awareness updates of y-protocols (cursors, selections, names), checked and rewritten.

The encoding (lib0): varuint count, then per client: varuint client id, varuint clock,
varstring JSON state ("null" when the client left). The hub decodes each update so that a
socket speaks only for its own client ids and under its account's real name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pycrdt import Decoder, Encoder


class BadAwareness(ValueError):
    pass


@dataclass(slots=True)
class ClientState:
    client_id: int
    clock: int
    state: Any  # the decoded JSON; None when the client left


def decode(data: bytes) -> list[ClientState]:
    try:
        decoder = Decoder(data)
        count = decoder.read_var_uint()
        if count > 1000:
            raise BadAwareness("too many awareness states")
        states = []
        for _ in range(count):
            client_id = decoder.read_var_uint()
            clock = decoder.read_var_uint()
            states.append(ClientState(client_id, clock, json.loads(decoder.read_var_string())))
        return states
    except (ValueError, TypeError, IndexError, RuntimeError) as exc:
        raise BadAwareness("not an awareness update") from exc


def encode(states: list[ClientState]) -> bytes:
    encoder = Encoder()
    encoder.write_var_uint(len(states))
    for s in states:
        encoder.write_var_uint(s.client_id)
        encoder.write_var_uint(s.clock)
        encoder.write_var_string(json.dumps(s.state, separators=(",", ":")))
    return encoder.to_bytes()


def with_identity(state: Any, *, name: str, account_id: str) -> Any:
    """The state with `user.name` and `user.account_id` set by the hub."""
    if not isinstance(state, dict):
        return state
    user = state.get("user")
    user = dict(user) if isinstance(user, dict) else {}
    user["name"], user["account_id"] = name, account_id
    return {**state, "user": user}
