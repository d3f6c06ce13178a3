"""Rendering off the event loop, each render in a process of its own with a time and a
memory limit.

Why processes and not threads: a renderer can be slow on purpose-built input
(Python-Markdown is quadratic on `'[' * 16000`) and a thread cannot be stopped, so a few
such files would hold every worker thread for good. A process can be killed at its
deadline. Processes come from a forkserver that has imported the renderers once, so
starting one costs a fork, not an interpreter start. At most `concurrency` renders run
at once (the others wait), so the hub's cores stay available to it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
from multiprocessing.connection import Connection
from typing import Any

from cocalc_k8s.share.kinds import Limits
from cocalc_k8s.share.links import Links

PRELOAD = ["cocalc_k8s.share.render"]
DEFAULT_MEMORY = 2 * 1024**3  # address space of one render process


class RenderFailed(Exception):
    """The file could not be rendered: `str()` says why, for the reader."""


def _child(conn: Connection, kind: str, data: bytes, name: str, links: Links, memory: int) -> None:
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        from cocalc_k8s.share.render import render

        result: tuple[str, str] = ("ok", render(kind, data, name, links))
    except MemoryError:
        result = ("error", "it needs more memory than a rendering may use")
    except RecursionError:
        result = ("error", "it is nested too deeply")
    except Exception as exc:  # the reader sees a short reason, never a traceback
        result = ("error", f"it is not valid ({type(exc).__name__})")
    try:
        conn.send(result)
    finally:
        conn.close()


class RenderPool:
    def __init__(self, *, concurrency: int = 2, memory: int = DEFAULT_MEMORY) -> None:
        self._context: Any = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._slots = asyncio.Semaphore(concurrency)
        self.memory = memory

    async def warm_up(self) -> None:
        """Start the forkserver (an interpreter importing the renderers: seconds on a busy
        machine) before the first reader waits for it."""
        from multiprocessing import forkserver

        await asyncio.to_thread(forkserver.ensure_running)

    async def render(self, kind: str, data: bytes, name: str, links: Links, limits: Limits) -> str:
        """The HTML, or RenderFailed (too slow, too big, invalid)."""
        async with self._slots:
            return await asyncio.to_thread(self._run, kind, data, name, links, limits.seconds)

    def _run(self, kind: str, data: bytes, name: str, links: Links, seconds: float) -> str:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child, args=(sender, kind, data, name, links, self.memory), daemon=True
        )
        try:
            try:
                process.start()
            finally:
                sender.close()
            if not receiver.poll(seconds):
                raise RenderFailed(f"it takes longer than {seconds:g} seconds to render")
            status, value = receiver.recv()
        except EOFError:
            raise RenderFailed("the renderer stopped (out of memory?)") from None
        finally:
            if process.pid is not None:
                process.kill()  # a no-op once it has exited
                process.join()
            receiver.close()
        if status != "ok":
            raise RenderFailed(value)
        return str(value)
