"""The realtime channel: a Socket.IO server (python-socketio on the hub's aiohttp app)
that syncs collaborative documents. The wire protocol is docs/realtime.md."""
