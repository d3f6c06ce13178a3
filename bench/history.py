"""TimeTravel's costs, on a real (embedded) PostgreSQL and a real project agent.

1. Storage: a 100 KB file saved `--saves` times (1,000), each save a small change (a line
   edited, inserted or deleted somewhere), recorded as versions; the bytes stored
   (`file_versions.data`, and the table's whole size on disk) against the raw bytes of
   every version (the ratio).
2. A long history: a file with `--updates` (100,000) stored editor updates grouped into
   versions (50 updates a version: 2,000 versions); the time to open its history (the
   first page, and "load the whole history"), to show any version (the worst: the
   most deltas to replay), and the diff of two versions of a 1 MB file.
3. The watcher: a real agent (`python -m cocalc_k8s.agent`) watching a home, the hub's
   FileWatcher pulling from it and HistoryService recording every change, while a writer
   process changes `--files` (10,000) files in `--seconds` (60); then the same time with
   nothing changing (should be ~0). CPU seconds of the agent and of the hub side, against
   the writer's own.

    python bench/history.py [--saves 1000] [--updates 100000] [--files 10000] [--seconds 60]

Measured (2 cores shared with seven other engineers' test runs, so times vary 2-7x
between runs): 1,000 saves of a 104 KB file: 101.5 MB raw, 0.38 MB stored (ratio 265x;
the table with its TOAST and index 0.7 MB), 40-65 ms per save. 100,000 updates as 2,000
versions: first page 28-77 ms, whole history 66-258 ms, the worst version 11-109 ms, a
diff of two 1 MB versions 228-449 ms. Watcher: 10,000 files changed in 60 s: agent 2-3 s
CPU; the hub records every one of them, 134 s CPU, all done 537 s after the start
(~19 versions/s here: recording, not watching, is the cost); nothing changing for 60 s:
agent 0.07 s, hub 0.02 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from _hub import free_port
from sqlalchemy import text

from cocalc_k8s.agent.launch import start_agent
from cocalc_k8s.backends.agent_client import AgentClient
from cocalc_k8s.backends.base import AgentAddress
from cocalc_k8s.db.embedded import EmbeddedPostgres
from cocalc_k8s.db.engine import create_hub_engine
from cocalc_k8s.db.migrate import upgrade
from cocalc_k8s.services.documents.service import DocumentService
from cocalc_k8s.services.files import ProjectFiles
from cocalc_k8s.services.history.service import HistoryPolicy, HistoryService
from cocalc_k8s.services.history.store import HistoryStore
from cocalc_k8s.services.watcher import FileWatcher

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


def line(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + "\n"


def small_change(lines: list[str], rng: random.Random) -> None:
    i = rng.randrange(len(lines))
    what = rng.random()
    if what < 0.5:
        lines[i] = line(rng)
    elif what < 0.8:
        lines.insert(i, line(rng))
    elif len(lines) > 10:
        del lines[i]


class OneProject:
    """The call of a backend the watcher makes, for one running agent."""

    def __init__(self, project_id: uuid.UUID, address: AgentAddress) -> None:
        self.project_id, self._address = project_id, address

    def address(self, project_id: uuid.UUID) -> AgentAddress | None:
        return self._address if project_id == self.project_id else None


async def new_project(engine: Any) -> uuid.UUID:
    project_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO projects (project_id, title) VALUES (:id, 'bench')"),
            {"id": project_id},
        )
    return project_id


async def storage(engine: Any, saves: int) -> None:
    store = HistoryStore(engine)
    project_id = await new_project(engine)
    rng = random.Random(1)
    lines: list[str] = []
    while sum(map(len, lines)) < 100_000:
        lines.append(line(rng))
    raw = 0
    began = time.perf_counter()
    for _ in range(saves):
        small_change(lines, rng)
        body = "".join(lines)
        raw += len(body.encode())
        await store.record(project_id, "big.txt", body, authors=[], kind="disk")
    elapsed = time.perf_counter() - began
    async with engine.connect() as conn:
        stored = await conn.scalar(text("SELECT sum(length(data)) FROM file_versions"))
        table = await conn.scalar(text("SELECT pg_total_relation_size('file_versions')"))
    print(
        f"storage: {saves} saves of a {len(body) / 1000:.0f} KB file: raw {raw / 1e6:.1f} MB, "
        f"stored {stored / 1e6:.2f} MB (ratio {raw / stored:.0f}x; table {table / 1e6:.1f} MB),"
        f" {elapsed / saves * 1000:.1f} ms per save"
    )


async def long_history(engine: Any, updates: int) -> None:
    store = HistoryStore(engine)
    project_id = await new_project(engine)
    rng = random.Random(2)
    lines = [line(rng) for _ in range(1000)]
    versions = updates // 50
    for _ in range(versions):
        small_change(lines, rng)
        await store.record(project_id, "long.py", "".join(lines), authors=[], kind="edit")
    history = await store.find(project_id, "long.py")
    assert history is not None
    timings: dict[str, float] = {}
    for name, limit in (("first page (100)", 100), ("whole history", versions + 1)):
        began = time.perf_counter()
        found, _ = await store.versions(history.id, before=None, limit=limit)
        timings[name] = time.perf_counter() - began
        assert len(found) == min(limit, versions)
    store.forget_texts()
    began = time.perf_counter()
    await store.text(history.id, versions - 1)  # the most deltas after a snapshot
    timings["worst version"] = time.perf_counter() - began

    big = [line(rng) for _ in range(12_000)]  # ~1 MB
    await store.record(project_id, "big.txt", "".join(big), authors=[], kind="disk")
    for _ in range(20):
        small_change(big, rng)
    await store.record(project_id, "big.txt", "".join(big), authors=[], kind="disk")
    service = HistoryService(
        ProjectFiles(Path(tempfile.mkdtemp()), max_file_bytes=1 << 30),
        store,
        watcher=_NoWatcher(),  # type: ignore[arg-type]
        documents=_NoDocuments(),  # type: ignore[arg-type]
    )
    began = time.perf_counter()
    ops = await service.diff(project_id, "big.txt", 1, 2)
    timings["diff of two 1 MB versions"] = time.perf_counter() - began
    print(
        f"long history: {updates} updates as {versions} versions: "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
        + f" ({len(ops)} diff runs)"
    )


class _NoWatcher:
    def subscribe(self, _subscriber: Any) -> None:
        pass


class _NoDocuments:
    open_listeners: list[Any] = []


WRITER = """
import sys, time, pathlib
root, files, seconds = pathlib.Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
began = time.monotonic()
for i in range(files):
    (root / f"d{i % 100}").mkdir(exist_ok=True)
    (root / f"d{i % 100}" / f"f{i}.txt").write_text(f"file {i}\\n" * 20)
    delay = began + (i + 1) * seconds / files - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""


async def watcher_cost(engine: Any, url: str, files: int, seconds: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-history-"))
    project_id = await new_project(engine)
    home = root / str(project_id)
    home.mkdir()
    agent = start_agent(home)
    agents = AgentClient()
    project_files = ProjectFiles(root, max_file_bytes=1 << 30)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE projects SET state = 'running' WHERE project_id = :id"),
            {"id": project_id},
        )
    watcher = FileWatcher(
        engine,
        OneProject(project_id, AgentAddress(host="127.0.0.1", port=agent.port, token=agent.token)),  # type: ignore[arg-type]
        agents,
        project_files,
        max_bytes=1 << 20,
    )
    documents = DocumentService(engine, project_files, database_url=url, watcher=watcher)
    history = HistoryService(
        project_files,
        HistoryStore(engine),
        watcher=watcher,
        documents=documents,
        policy=HistoryPolicy(),
    )
    me, them = psutil.Process(), psutil.Process(agent.process.pid)
    try:
        await watcher.start()
        await asyncio.sleep(2)
        for phase in ("busy", "idle"):
            hub0, agent0 = me.cpu_times(), them.cpu_times()
            began = time.monotonic()
            writer_cpu = 0.0
            if phase == "busy":
                writer = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", WRITER, str(home), str(files), str(seconds)
                )
                child = psutil.Process(writer.pid)
                while writer.returncode is None:
                    with contextlib.suppress(psutil.Error):
                        t = child.cpu_times()  # its last figure before it exits
                        writer_cpu = t.user + t.system
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(writer.wait(), 0.2)
                # Until every change is recorded (or nothing moves for 10 s).
                last, still = -1, time.monotonic()
                while (done := await count(engine, project_id)) < files:
                    if done != last:
                        last, still = done, time.monotonic()
                    elif time.monotonic() - still > 10:
                        break
                    await asyncio.sleep(0.5)
            else:
                await asyncio.sleep(seconds)
            hub1, agent1 = me.cpu_times(), them.cpu_times()
            hub_cpu = hub1.user + hub1.system - hub0.user - hub0.system
            agent_cpu = agent1.user + agent1.system - agent0.user - agent0.system
            recorded = await count(engine, project_id)
            took = time.monotonic() - began
            what = (
                f"{files} files changed in {seconds:.0f} s, all recorded after {took:.0f} s"
                if phase == "busy"
                else f"nothing changing for {took:.0f} s"
            )
            print(
                f"watcher, {what}: agent {agent_cpu:.2f} s"
                f" CPU, hub {hub_cpu:.2f} s CPU (writer {writer_cpu:.2f} s); versions {recorded}"
            )
    finally:
        await watcher.close()
        await history.close()
        await agents.close()
        agent.stop()
        shutil.rmtree(root, ignore_errors=True)


async def count(engine: Any, project_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text(
                "SELECT count(*) FROM file_versions v JOIN file_histories h"
                " ON h.id = v.history_id WHERE h.project_id = :p"
            ),
            {"p": project_id},
        )
    return int(found or 0)


async def run(args: argparse.Namespace, url: str) -> None:
    engine = create_hub_engine(url, pool_size=5)
    try:
        await storage(engine, args.saves)
        await long_history(engine, args.updates)
        await watcher_cost(engine, url, args.files, args.seconds)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-history-pg-"))
    server = EmbeddedPostgres(root, port=free_port())
    server.start()
    try:
        upgrade(server.url)
        asyncio.run(run(args, server.url))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
