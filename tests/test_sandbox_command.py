"""The bubblewrap command line (pure) and the probe of whether bubblewrap runs here."""

from __future__ import annotations

import os
from pathlib import Path

from cocalc_k8s.backends.sandbox import (
    GENERATED_ETC,
    SandboxSpec,
    bwrap_command,
    etc_files,
    minimal_roots,
    sandbox_available,
)
from cocalc_k8s.backends.seccomp import no_user_namespaces

LAYOUT = {"/usr": None, "/bin": "usr/bin", "/lib": "usr/lib", "/lib64": "usr/lib64"}
HOME = Path("/root/data/projects/p1")
PYTHON = Path("/root/.pyenv/versions/3.11.7")


def _spec(uid: int | None) -> SandboxSpec:
    return SandboxSpec(
        home=HOME,
        uid=uid,
        etc_dir=Path("/root/data/run/p1/etc"),
        read_only=[PYTHON],
        etc_entries=["ssl"],
        tmp_mb=64,
    )


def _pairs(args: list[str], flag: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a == flag]


def test_as_root_no_user_namespace_and_setpriv_drops_to_the_project_uid() -> None:
    args = bwrap_command(_spec(2001), ["python", "-m", "cocalc_k8s.agent"], is_link=LAYOUT)
    assert args[0] == "bwrap"
    assert "--unshare-user" not in args
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"):
        assert flag in args
    assert "--die-with-parent" in args and "--new-session" in args
    setpriv = args.index("setpriv")
    assert args[setpriv + 1 : setpriv + 3] == ["--reuid=2001", "--regid=2001"]
    assert "--clear-groups" in args and "--no-new-privs" in args
    assert args[-3:] == ["python", "-m", "cocalc_k8s.agent"]


def test_as_a_normal_user_a_user_namespace_without_capabilities() -> None:
    args = bwrap_command(_spec(None), ["true"], is_link=LAYOUT)
    assert "--unshare-user" in args and "--disable-userns" in args
    assert args[args.index("--cap-drop") + 1] == "ALL"
    assert "setpriv" not in args


def test_only_the_home_is_writable_and_the_data_dir_is_not_bound() -> None:
    args = bwrap_command(_spec(2001), ["true"], is_link=LAYOUT)
    assert _pairs(args, "--bind") == [(str(HOME), str(HOME))]
    bound = [src for src, _ in _pairs(args, "--ro-bind")]
    assert "/usr" in bound and str(PYTHON) in bound and "/etc/ssl" in bound
    assert not any(src.startswith("/root/data") and "etc" not in src for src in bound)
    assert ("usr/bin", "/bin") in _pairs(args, "--symlink")
    # The root is a tmpfs; /tmp and /dev/shm are private and sized.
    assert args[args.index("--tmpfs") + 1] == "/"
    assert args[args.index("/tmp") - 3 : args.index("/tmp")] == ["--size", str(64 << 20), "--tmpfs"]
    assert "/dev/shm" in args


def test_directories_above_binds_are_made_traversable() -> None:
    args = bwrap_command(_spec(2001), ["true"], is_link=LAYOUT)
    made = [args[i + 3] for i, a in enumerate(args) if a == "--perms" and args[i + 2] == "--dir"]
    for parent in ("/root", "/root/.pyenv", "/root/.pyenv/versions", "/root/data/projects"):
        assert parent in made
    assert args[args.index("/root/data/projects") - 2] == "0711"  # traversed, not listed
    # each made once, and before what is bound below it
    assert len(made) == len(set(made))
    assert args.index("/root") < args.index(str(PYTHON))


def test_generated_etc_names_the_project_user() -> None:
    files = etc_files(uid=2001, home=HOME, hostname="p1")
    assert f"user:x:2001:2001:project:{HOME}:/bin/bash" in files["passwd"]
    assert "p1" in files["hosts"] and files["hostname"] == "p1\n"


def test_minimal_roots_drop_nested_and_system_paths() -> None:
    roots = minimal_roots([Path("/a/b"), Path("/a"), Path("/usr/lib/python3"), Path("/c")])
    assert roots == [Path("/a"), Path("/c")]


def test_bubblewrap_runs_here() -> None:
    assert sandbox_available() is None


def test_missing_bubblewrap_is_named_with_the_fix(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", "/nonexistent")
    reason = sandbox_available()
    assert reason is not None and "apt install bubblewrap" in reason
    assert os.environ["PATH"] == "/nonexistent"


def test_a_copy_of_etc_is_bound_in_one_mount_under_the_generated_files() -> None:
    spec = SandboxSpec(
        home=HOME, uid=2001, etc_dir=Path("/run/p1/etc"), etc_view=Path("/run/etc-1")
    )
    args = bwrap_command(spec, ["true"], is_link=LAYOUT)
    binds = _pairs(args, "--ro-bind")
    etc = [pair for pair in binds if pair[1].startswith("/etc")]
    assert etc[0] == ("/run/etc-1", "/etc")
    assert sorted(etc[1:]) == [(f"/run/p1/etc/{n}", f"/etc/{n}") for n in sorted(GENERATED_ETC)]


def test_the_seccomp_filter_is_passed_and_known_only_for_known_architectures() -> None:
    program = no_user_namespaces("x86_64")
    assert program is not None and len(program) % 8 == 0  # struct sock_filter, 8 bytes each
    assert no_user_namespaces("aarch64") not in (None, program)
    assert no_user_namespaces("sparc") is None
    spec = SandboxSpec(home=HOME, uid=2001, etc_dir=Path("/run/p1/etc"), seccomp_fd=9)
    args = bwrap_command(spec, ["true"], is_link=LAYOUT)
    assert args[args.index("--seccomp") + 1] == "9"
