"""The static files: vendored bundles ship with gzipped twins that match them, and the hub
sends a twin only to browsers that accept gzip."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.web.templating import STATIC_DIR

VENDOR = STATIC_DIR / "vendor"
BUNDLES = sorted(p for p in VENDOR.rglob("*") if p.suffix in (".js", ".css"))


def test_there_are_bundles() -> None:
    assert any(p.name.startswith("codemirror-") for p in BUNDLES)


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: str(p.relative_to(VENDOR)))
def test_each_bundle_has_a_gzipped_twin_with_the_same_content(bundle: Path) -> None:
    twin = bundle.with_name(bundle.name + ".gz")
    assert twin.exists(), f"{twin.name} is missing: run scripts/build-static.sh"
    assert gzip.decompress(twin.read_bytes()) == bundle.read_bytes(), f"{twin.name} is stale"


def test_no_twin_without_its_bundle() -> None:
    for twin in STATIC_DIR.rglob("*.gz"):
        assert twin.with_suffix("").exists(), f"{twin} has no bundle beside it"


async def test_the_hub_sends_the_twin_to_browsers_that_accept_gzip(client: Any) -> None:
    bundle = next(p for p in BUNDLES if p.name.startswith("codemirror-"))
    url = "/static/" + str(bundle.relative_to(STATIC_DIR))
    resp = await client.get(url, headers={"Accept-Encoding": "gzip, br"}, auto_decompress=False)
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["Content-Type"].endswith("/javascript")
    assert gzip.decompress(await resp.read()) == bundle.read_bytes()
    plain = await client.get(url, headers={"Accept-Encoding": "identity"}, auto_decompress=False)
    assert "Content-Encoding" not in plain.headers
    assert await plain.read() == bundle.read_bytes()
