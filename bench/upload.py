"""Resumable uploads through the hub against writing the same bytes locally.

Starts a real `cocalc-k8s serve`, creates a project, then uploads a file of SIZE MiB
through `/api/v2/projects/{id}/uploads` in 8 MiB chunks, each with its SHA-256 in
`Content-Digest` (as the browser sends them), one after the other on one keep-alive
connection. The baseline, measured in the same run on the same disk: writing the same
bytes to a file and fsync-ing it, plus the SHA-256 of every chunk (the work the client
does anyway). Prints MB/s for both and their ratio.

    python bench/upload.py [--size 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from _hub import median, running_hub, sign_up

CHUNK = 8 * 1024 * 1024


def local_write(path: Path, data: bytes) -> float:
    start = time.perf_counter()
    with path.open("wb") as out:
        for offset in range(0, len(data), CHUNK):
            chunk = data[offset : offset + CHUNK]
            hashlib.sha256(chunk).digest()
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return time.perf_counter() - start


def upload(base: str, headers: dict[str, str], project_id: str, name: str, data: bytes) -> float:
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    api = f"/api/v2/projects/{project_id}/uploads"
    start = time.perf_counter()
    body = json.dumps({"path": name, "size": len(data)})
    connection.request("POST", api, body, {**headers, "Content-Type": "application/json"})
    created = connection.getresponse()
    upload_id = json.loads(created.read())["upload_id"]
    assert created.status == 201
    for offset in range(0, len(data), CHUNK):
        chunk = data[offset : offset + CHUNK]
        digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
        connection.request(
            "PUT",
            f"{api}/{upload_id}",
            chunk,
            {**headers, "Upload-Offset": str(offset), "Content-Digest": f"sha-256=:{digest}:"},
        )
        answer = connection.getresponse()
        state = json.loads(answer.read())
        assert answer.status == 200, state
    assert state["complete"], state
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="MiB per file")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(args.size * 1024 * 1024)
    with running_hub() as hub:
        account = sign_up(hub.base)
        headers = {"Authorization": f"Bearer {account.api_key}"}
        connection = http.client.HTTPConnection(*urlsplit(hub.base).netloc.split(":"))
        connection.request(
            "POST",
            "/api/v2/projects",
            json.dumps({"title": "Uploads"}),
            {**headers, "Content-Type": "application/json"},
        )
        project_id = json.loads(connection.getresponse().read())["project_id"]
        connection.close()
        local, hub_times = [], []
        for round_ in range(args.rounds):  # interleaved: machine noise hits both alike
            local.append(local_write(hub.data_dir / f"local-{round_}.bin", data))
            hub_times.append(upload(hub.base, headers, project_id, f"up-{round_}.bin", data))
        home_file = hub.data_dir / "projects" / project_id / "up-0.bin"
        assert hashlib.sha256(home_file.read_bytes()).digest() == hashlib.sha256(data).digest()
    megabytes = len(data) / 1e6
    local_rate, hub_rate = megabytes / median(local), megabytes / median(hub_times)
    print(f"{args.size} MiB, {args.rounds} rounds (medians), chunks of {CHUNK >> 20} MiB")
    print(f"  local write + fsync + SHA-256   {local_rate:8.1f} MB/s")
    print(f"  resumable upload via the hub    {hub_rate:8.1f} MB/s")
    print(f"  hub / local                     {hub_rate / local_rate:8.2f}")


if __name__ == "__main__":
    main()
