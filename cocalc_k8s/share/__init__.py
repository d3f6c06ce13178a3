"""The share server: published files rendered at /share (rendering is pure and runs off
the event loop; the views read the files from the hub's own storage, never starting a
project)."""
