"""Documents and their files: saves reach the disk (also while someone keeps typing),
changes on disk come in as minimal diffs by "disk", a save never overwrites a disk change
it has not merged, binary and over-size files open read-only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psycopg

from cocalc_k8s.keys import SETTINGS
from tests.realtime.client import wait_for


def home(member: Any, project_id: str) -> Path:
    return Path(member.user.client.server.app[SETTINGS].data_dir) / "projects" / project_id


def read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


async def test_typing_is_saved_and_a_disk_change_arrives_as_a_diff(
    team: Any, database_url: str
) -> None:
    project_id, (alice, bob) = await team(2)
    file = home(alice, project_id) / "src" / "main.py"
    file.parent.mkdir(parents=True)
    original = "".join(f"print({i})\n" for i in range(5000))  # ~50 KB
    file.write_text(original)
    a, b = alice.client(), bob.client()
    await a.connect()
    await b.connect()
    await a.join(project_id, "src/main.py")
    await b.join(project_id, "src/main.py")
    assert a.text == b.text == original
    await a.insert(0, "# header\n")
    await wait_for(lambda: read(file) == "# header\n" + original, within=5)

    with file.open("a") as f:  # a terminal appends a line
        f.write("print('from the terminal')\n")
    expected = "# header\n" + original + "print('from the terminal')\n"
    await wait_for(lambda: a.text == expected and b.text == expected, within=5)
    await b.append("# typing goes on\n")
    await wait_for(lambda: read(file) == expected + "# typing goes on\n", within=5)
    assert a.text == expected + "# typing goes on\n"
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT source, account_id, length(data) FROM document_updates"
            " WHERE document_id = %s ORDER BY seq",
            (a.doc_id,),
        ).fetchall()
    assert [r[0] for r in rows] == ["load", "client", "disk", "client"]
    assert rows[2][1] is None and rows[2][2] < 200  # a diff, not the 50 KB text again
    await a.close()
    await b.close()


async def test_a_document_typed_into_without_a_pause_is_saved_all_the_same(team: Any) -> None:
    """Saves wait for 1.5 s without a change, but no more than 5 s after the first unsaved
    one: a key every 0.3 s (never a pause of 1.5 s) still reaches the file."""
    project_id, (alice,) = await team(1)
    file = home(alice, project_id) / "busy.txt"
    a = alice.client()
    await a.connect()
    await a.join(project_id, "busy.txt")
    typed, saved_while_typing = "", None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert (await a.append("k"))["ok"]
        typed += "k"
        on_disk = read(file)
        if on_disk and len(on_disk) > 5:  # a save since the typing began
            saved_while_typing = on_disk
            break
        await asyncio.sleep(0.3)
    assert saved_while_typing is not None and typed.startswith(saved_while_typing)
    await a.close()


async def test_a_save_never_overwrites_an_unmerged_disk_change(team: Any) -> None:
    project_id, (alice,) = await team(1)
    file = home(alice, project_id) / "notes.md"
    file.parent.mkdir(parents=True)
    file.write_text("one\ntwo\nthree\n")
    a = alice.client()
    await a.connect()
    await a.join(project_id, "notes.md")
    await a.insert(0, "zero\n")  # its save is due in 1.5 s
    file.write_text("one\ntwo\nthree\nfour\n")  # changed on disk before that
    both = "zero\none\ntwo\nthree\nfour\n"
    await wait_for(lambda: read(file) == both and a.text == both, within=5)
    await a.close()


async def test_binary_and_over_size_files_open_read_only(team: Any) -> None:
    project_id, (alice,) = await team(1, document_max_mb=1)
    root = home(alice, project_id)
    root.mkdir(parents=True, exist_ok=True)
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    (root / "huge.log").write_text("x" * (1024**2 + 10))
    a = alice.client()
    await a.connect()
    ack = await a.join(project_id, "image.png")
    assert ack["ok"] and ack["read_only"] and ack["reason"] == "binary" and ack["doc"] is None
    assert "read-only" in ack["message"]
    ack = await a.join(project_id, "huge.log")
    assert ack["read_only"] and ack["reason"] == "too-large" and ack["size"] == 1024**2 + 10
    ack = await a.join(project_id, "../escape.txt")
    assert ack["error"]["code"] == "bad-request"
    await a.close()
