"""Copies between projects against `cp -a` of the same folder, in the same run.

(Not bench/copy.py: that name would shadow the standard library's copy module.)

Two homes on the same disk; the copy engine the hub runs for `POST /api/v2/copies`
(`cocalc_k8s.core.tree_copy.copy_between`: by descriptors, staged, one syncfs, renamed
into place) copies:

- a folder of SIZE MiB of mixed file sizes (4 KiB to 64 MiB), reported in MB/s;
- a folder of FILES small files (100 B to 4 KiB), reported in files/s;

and `cp -a` copies the same folders followed by `sync` (the engine flushes its
copy to disk before it renames it into place, so the baseline does too). Each is run
ROUNDS times, the page cache dropped of nothing (both read warm sources). Prints the
medians and the ratio engine / cp (1.0: as fast as cp).

    python bench/project_copy.py [--size 1024] [--files 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from cocalc_k8s.core.projectfs import ProjectFS
from cocalc_k8s.core.tree_copy import Progress, copy_between


def mixed_tree(root: Path, total: int) -> None:
    rng = random.Random(7)
    written = 0
    block = os.urandom(1 << 20)
    i = 0
    while written < total:
        size = min(total - written, int(4096 * 2 ** rng.uniform(0, 14)))
        path = root / f"d{i % 16}" / f"f{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            left = size
            while left:
                out.write(block[: min(left, len(block))])
                left -= min(left, len(block))
        written += size
        i += 1


def small_tree(root: Path, count: int) -> None:
    rng = random.Random(8)
    for i in range(count):
        path = root / f"d{i % 100}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(rng.randint(100, 4096)))


def engine(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    copy_between(
        ProjectFS(src.parent),
        src.name,
        ProjectFS(dst.parent),
        dst.name,
        copy_id="bench",
        overwrite=False,
        progress=Progress(),
        max_bytes=1 << 62,
    )
    return time.perf_counter() - start


def cp(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - start


def measure(src: Path, out: Path, rounds: int) -> tuple[float, float]:
    times: dict[str, list[float]] = {"engine": [], "cp": []}
    for n in range(rounds):
        for name, run in (("engine", engine), ("cp", cp)):
            dst = out / f"{name}-{n}"
            times[name].append(run(src, dst))
            shutil.rmtree(dst)
    return statistics.median(times["engine"]), statistics.median(times["cp"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB of mixed files")
    parser.add_argument("--files", type=int, default=10_000, help="number of small files")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-copy-", dir="/var/tmp") as tmp:
        base = Path(tmp)
        a, b = base / "a", base / "b"
        a.mkdir()
        b.mkdir()
        mixed_tree(a / "mixed", args.size << 20)
        small_tree(a / "small", args.files)
        e, c = measure(a / "mixed", b, args.rounds)
        mb = args.size * 1.048576
        print(f"{args.size} MiB mixed: engine {mb / e:,.0f} MB/s, cp -a {mb / c:,.0f} MB/s")
        print(f"  ratio engine/cp: {c / e:.2f}")
        e, c = measure(a / "small", b, args.rounds)
        print(
            f"{args.files:,} small files: engine {args.files / e:,.0f} files/s,"
            f" cp -a {args.files / c:,.0f} files/s"
        )
        print(f"  ratio engine/cp: {c / e:.2f}")


if __name__ == "__main__":
    main()
