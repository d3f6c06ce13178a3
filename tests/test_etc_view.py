"""The copy of /etc that sandboxes bind as one mount (`cocalc_k8s.backends.etc_view`)."""

from __future__ import annotations

import os
from pathlib import Path

from cocalc_k8s.backends.etc_view import EtcView


def _host_etc(root: Path) -> Path:
    etc = root / "etc"
    (etc / "ssl" / "certs").mkdir(parents=True)
    (etc / "ssl" / "certs" / "ca.pem").write_text("certificate")
    (etc / "ssl" / "private").mkdir(mode=0o700)
    (etc / "ssl" / "private" / "key.pem").write_text("secret")
    (etc / "ssl" / "private" / "key.pem").chmod(0o600)
    (etc / "localtime").symlink_to("/usr/share/zoneinfo/Etc/UTC")
    (etc / "gitconfig").write_text("[core]\n")
    (etc / "shadow").write_text("root:*:")  # not an allowed entry
    (etc / "passwd").write_text("the host's accounts")  # generated per project instead
    return etc


def test_the_copy_holds_the_allowed_entries_and_follows_changes(tmp_path: Path) -> None:
    etc = _host_etc(tmp_path)
    view = EtcView(tmp_path / "runtime", etc)
    (tmp_path / "runtime").mkdir()
    copy = view.current()
    assert sorted(os.listdir(copy)) == [
        "gitconfig", "group", "hostname", "hosts", "localtime", "passwd", "ssl",
    ]  # fmt: skip
    assert (copy / "passwd").read_text() == ""  # a place for the project's own
    assert not (copy / "shadow").exists()
    assert os.readlink(copy / "localtime") == "/usr/share/zoneinfo/Etc/UTC"
    assert (copy / "ssl" / "certs" / "ca.pem").read_text() == "certificate"
    private = copy / "ssl" / "private" / "key.pem"
    assert private.stat().st_mode & 0o777 == 0o600  # modes kept: no more readable than it was
    assert copy.stat().st_mode & 0o777 == 0o755
    assert view.current() == copy  # nothing changed, nothing checked yet: the same copy

    (etc / "ssl" / "certs" / "new.pem").write_text("another")
    assert view.refresh() != copy
    assert (view.current() / "ssl" / "certs" / "new.pem").read_text() == "another"
    assert (copy / "gitconfig").exists()  # the old copy stays for sandboxes that show it
    unchanged = view.current()
    assert view.refresh() == unchanged
