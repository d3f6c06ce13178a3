"""How versions are stored: whole or as deltas; the diff shown to people."""

from __future__ import annotations

from cocalc_k8s.services.history.delta import (
    apply_delta,
    pack_delta,
    pack_text,
    readable_diff,
    unpack_text,
)


def test_a_delta_rebuilds_the_new_text_and_is_small() -> None:
    old = "".join(f"line {i}: naïve café ☕ \U0001d518\n" for i in range(4000))  # ~120 KB
    new = old.replace("line 2000:", "line two thousand:", 1) + "the end\n"
    delta = pack_delta(old, new)
    assert apply_delta(old, delta) == new
    assert len(delta) < 200 < len(pack_text(new))
    assert unpack_text(pack_text(new)) == new


def test_deltas_of_empty_and_unrelated_texts() -> None:
    for old, new in [("", "a"), ("a", ""), ("", ""), ("abc\n", "xyz\n"), ("\t%+=\n", "=+%\t")]:
        assert apply_delta(old, pack_delta(old, new)) == new


def test_the_readable_diff_covers_both_texts() -> None:
    ops = readable_diff("the quick brown fox\n", "the slow brown dog\n")
    assert "".join(run for op, run in ops if op != "+") == "the quick brown fox\n"
    assert "".join(run for op, run in ops if op != "-") == "the slow brown dog\n"
    assert {op for op, _ in ops} == {"=", "-", "+"}
