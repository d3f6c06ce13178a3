"""Pathological files neither block the hub nor take it down: rendering runs in worker
processes with time and size limits, and /healthz answers all the while."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.share.helpers import home_of, publish, write
from tests.test_projects_api import new_project


def many_cells(count: int) -> str:
    cells = [
        {"cell_type": "code", "id": f"c{n}", "metadata": {}, "execution_count": n,
         "source": f"x = {n}\nprint(x)", "outputs": [
             {"output_type": "stream", "name": "stdout", "text": f"{n}\n"}]}
        for n in range(count)
    ]  # fmt: skip
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells})


@pytest.mark.timeout(300)  # four slow renders, two at a time, on a shared machine
async def test_pathological_inputs_keep_the_hub_answering(make_user: Any) -> None:
    alice = await make_user()
    project_id = await new_project(alice)
    home = home_of(alice, project_id)
    write(home, "bad/brackets.md", "[" * 16000)
    write(home, "bad/quotes.md", ">" * 400)
    write(home, "bad/cells.ipynb", many_cells(10_000))
    with (home / "bad/huge.py").open("wb") as f:  # 100 MB on one line
        for _ in range(100):
            f.write(b"x = 1; " * (1024 * 1024 // 7) + b"#" * (1024 * 1024 % 7))
    item = await publish(alice, project_id, path="bad", visibility="unlisted")
    base = f"/share/{item['id']}"

    async def page(name: str) -> tuple[int, str]:
        resp = await alice.client.get(f"{base}/{name}")
        return resp.status, await resp.text()

    pages = {
        name: asyncio.ensure_future(page(name))
        for name in ("brackets.md", "quotes.md", "cells.ipynb", "huge.py")
    }
    answered_while_rendering = 0
    while not all(task.done() for task in pages.values()):
        resp = await alice.client.get("/healthz")
        assert resp.status == 200
        if not all(task.done() for task in pages.values()):
            answered_while_rendering += 1
        await asyncio.wait(list(pages.values()), timeout=0.05)
    assert answered_while_rendering > 0

    results = {name: task.result() for name, task in pages.items()}
    for name, (status, _) in results.items():
        assert status == 200, name
    assert "longer than 10 seconds" in results["brackets.md"][1]
    assert "too large to show here" in results["huge.py"][1]
    # A slow machine may hit the time limit on these two too: then the page says so.
    quotes, cells = results["quotes.md"][1], results["cells.ipynb"][1]
    assert "<blockquote>" in quotes or "could not be shown" in quotes
    assert cells.count('class="nb-cell nb-code"') == 10_000 or "longer than 30 seconds" in cells
