"""The pure parts of the realtime channel: text diffs and the three-way merge of a disk
change, parts of large messages, awareness updates."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Text

from cocalc_k8s.core.errors import BadRequest
from cocalc_k8s.realtime import awareness
from cocalc_k8s.realtime.parts import PART_BYTES, Assembler, PartError, split
from cocalc_k8s.services.documents.service import clean_path
from cocalc_k8s.services.documents.textdiff import apply_diff, diff, merge3


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("", "hello"),
        ("hello", ""),
        ("héllo wörld 😀\n", "héllo there 😀 wörld!\n"),
        ("a\nb\nc\n", "a\nB\nc\nd\n"),
    ],
)
def test_a_diff_applied_to_a_shared_text_gives_the_new_text(old: str, new: str) -> None:
    doc: Doc[Text] = Doc()
    text = doc.get("text", type=Text)
    text.insert(0, old)
    with doc.transaction():
        apply_diff(text, diff(old, new))
    assert str(text) == new


@pytest.mark.parametrize(
    ("base", "current", "disk", "merged"),
    [
        ("one\n", "one\n", "one\ntwo\n", "one\ntwo\n"),  # nothing unsaved: the disk's text
        ("one\n", "zero\none\n", "one\n", "zero\none\n"),  # disk unchanged
        ("one\ntwo\n", "zero\none\ntwo\n", "one\ntwo\nthree\n", "zero\none\ntwo\nthree\n"),
        ("a b c", "a B c", "a b c d", "a B c d"),
        ("abc def ghi", "abc ghi", "abc dXf ghi", "abc Xghi"),  # both kept where both changed
    ],
)
def test_merge3_carries_the_disk_change_over(
    base: str, current: str, disk: str, merged: str
) -> None:
    assert merge3(base, current, disk) == merged


def test_parts_split_and_reassemble_in_order_only() -> None:
    data = bytes(range(256)) * 4000  # 1,024,000 bytes
    parts = split(data)
    assert len(parts) == 4 and all(len(piece) <= PART_BYTES for _, piece in parts)
    assert split(b"small") == []
    assembler = Assembler(max_bytes=2 * len(data))
    results = [assembler.add("doc", part, piece) for part, piece in parts]
    assert results[:-1] == [None, None, None] and results[-1] == data
    with pytest.raises(PartError, match="order"):
        assembler.add("doc", parts[1][0], parts[1][1])
    small = Assembler(max_bytes=PART_BYTES)
    small.add("doc", parts[0][0], parts[0][1])
    with pytest.raises(PartError, match="too large"):
        small.add("doc", parts[1][0], parts[1][1])


def test_awareness_round_trip_and_identity() -> None:
    states = [
        awareness.ClientState(5, 1, {"user": {"name": "Mallory"}}),
        awareness.ClientState(7, 2, None),
    ]
    decoded = awareness.decode(awareness.encode(states))
    assert decoded == states
    fixed = awareness.with_identity(decoded[0].state, name="Alice", account_id="a1")
    assert fixed == {"user": {"name": "Alice", "account_id": "a1"}}
    with pytest.raises(awareness.BadAwareness):
        awareness.decode(b"\xff\xff")


@pytest.mark.parametrize("path", ["", "/", "..", "../x", "a/../../x", "a\0b", 7])
def test_document_paths_stay_in_the_home(path: object) -> None:
    with pytest.raises(BadRequest):
        clean_path(path)


def test_document_paths_have_one_spelling() -> None:
    assert clean_path("/a/./b//c.txt") == "a/b/c.txt"
