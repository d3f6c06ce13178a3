"""Sending one event to a room without a task per recipient: the hot path of editing
(every keystroke forwarded to each collaborator, every cursor move).

python-socketio's `AsyncServer.emit` to a room encodes the event once, then starts one
task per recipient and packet (a binary event is two: its header and its attachment)
and waits for them all. Each of those sends only puts the packet on the recipient's
queue (engine.io's writer task of that socket does the writing), so the tasks are pure
cost. `send_to_room` puts the packets on the queues directly, in order.

Only for events of one packet pair each, sent once: a long run of events (the parts of
a large update) must keep going through `emit`, whose await per event lets a
long-polling client collect them a few at a time (python-engineio's client refuses a
polling response of more than 16 packets, `Payload.max_decode_packets`, and drops the
connection).
"""

from __future__ import annotations

from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet


async def send_to_room(
    sio: socketio.AsyncServer,
    event: str,
    data: Any,
    *,
    namespace: str,
    room: str,
    skip_sid: str | None = None,
) -> None:
    manager = sio.manager
    if namespace not in manager.rooms:
        return
    recipients = [
        eio_sid for sid, eio_sid in manager.get_participants(namespace, room) if sid != skip_sid
    ]
    if not recipients:
        return
    encoded = sio.packet_class(packet.EVENT, namespace=namespace, data=[event, data]).encode()
    pieces = encoded if isinstance(encoded, list) else [encoded]
    packets = [eio_packet.Packet(eio_packet.MESSAGE, piece) for piece in pieces]
    for eio_sid in recipients:
        for p in packets:
            await sio.eio.send_packet(eio_sid, p)
