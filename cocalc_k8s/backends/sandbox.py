"""The local backend's sandbox: the bubblewrap (`bwrap`) command line of a project, built
by a pure function, and a probe of whether bubblewrap can run here.

A project in its sandbox has new mount, PID, IPC, UTS and network namespaces. It sees:

- its home, read-write, at the same path as on the host (so paths the hub shows match);
- the system read-only: ``/usr`` (and the ``/bin``, ``/lib*``, ``/sbin`` links or
  directories), a short list of ``/etc`` entries (`ETC_ENTRIES`; bound one by one, or a
  copy of them in one mount) plus generated ``passwd``, ``group``, ``hosts`` and
  ``hostname``;
- the Python interpreter and the cocalc_k8s package read-only, at their host paths, with
  every directory above them created traversable (mode 0755) even where the host's is not
  (pyenv under ``/root``, mode 0700);
- a private ``/tmp`` and ``/dev/shm`` (tmpfs, sized), its own ``/proc`` (its processes
  only) and a minimal ``/dev``;
- nothing else: not the hub's data directory (database, ``secret_key``, logs, uploads,
  other homes), not the hub's sockets, not the host's loopback (its own network namespace
  has a loopback of its own; see `cocalc_k8s.backends.network` for internet access).

Who the project runs as:

- hub as root: no user namespace (one created by root would map the project to root);
  the sandbox is entered as root and `setpriv` drops to the project's own uid and gid, with
  no supplementary groups, no capabilities (bounding set emptied) and no_new_privs; a
  seccomp filter keeps it from making user namespaces (`cocalc_k8s.backends.seccomp`);
- hub as a normal user: a user namespace in which the project has the hub's uid (there is
  no other to have), with every capability dropped and no further user namespaces.

Either way ``--die-with-parent`` ends the sandbox with the hub, ``--new-session`` keeps
the project off any terminal of the hub's (no TIOCSTI), and because the sandbox's PID 1 is
bubblewrap's, ending it ends every process of the project, daemons included.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BWRAP = "bwrap"
SETPRIV = "setpriv"
# The system, read-only. Links (merged /usr) are recreated as links, directories bound.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What of /etc a project sees (patterns; whatever exists of them): what programs need to
# run, find libraries, certificates, time zones and terminals; never the host's accounts,
# keys or service configuration. passwd, group, hosts and hostname are generated.
ETC_ENTRIES = (
    "alternatives", "bash.bashrc", "bash_completion", "bash_completion.d", "ca-certificates",
    "ca-certificates.conf", "debian_version", "environment", "fonts", "gai.conf",
    "gitconfig", "host.conf", "inputrc", "jupyter", "ld.so.cache", "ld.so.conf",
    "ld.so.conf.d", "locale.alias", "locale.conf", "localtime", "login.defs", "lsb-release",
    "magic", "magic.mime", "mailcap", "manpath.config", "mime.types", "nanorc",
    "nsswitch.conf", "os-release", "papersize", "pip.conf", "profile", "profile.d",
    "protocols", "python*", "R", "screenrc", "services", "skel", "ssl", "terminfo",
    "timezone", "tmux.conf", "vim", "wgetrc", "xdg", "ImageMagick*", "texmf", "matplotlibrc",
)  # fmt: skip
GENERATED_ETC = ("passwd", "group", "hosts", "hostname")
PROBE_TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True)
class SandboxSpec:
    """What one project's sandbox is made of (host paths unless said otherwise)."""

    home: Path
    """The project's home, bound read-write at the same path."""
    uid: int | None
    """The project's own uid and gid (hub as root), or None: a user namespace (hub not root)."""
    etc_dir: Path
    """A directory holding the generated `GENERATED_ETC` files (see `etc_files`)."""
    read_only: Sequence[Path] = ()
    """More paths bound read-only at their host paths: the interpreter, the package."""
    tmp_mb: int = 512
    """Size of the private /tmp and of /dev/shm, each (tmpfs: counted as memory)."""
    hostname: str = "project"
    system_dirs: Sequence[str] = SYSTEM_DIRS
    etc_entries: Sequence[str] = field(default_factory=list)
    """The host's /etc entries to show (names; see `etc_names`), each bound by itself."""
    etc_view: Path | None = None
    """Instead of `etc_entries`: a directory bound as /etc in one mount (see
    `cocalc_k8s.backends.etc_view`), with an empty file for each generated name."""
    info_fd: int | None = None
    """A descriptor bubblewrap writes ``{"child-pid": N}`` to (for the network helper)."""
    seccomp_fd: int | None = None
    """A descriptor to read a seccomp filter from (`cocalc_k8s.backends.seccomp`)."""


def etc_names(etc: Path = Path("/etc")) -> list[str]:
    """The entries of the host's /etc that match `ETC_ENTRIES` (reads the directory)."""
    try:
        names = sorted(os.listdir(etc))
    except OSError:
        return []
    return [
        name
        for name in names
        if name not in GENERATED_ETC and any(fnmatch.fnmatchcase(name, p) for p in ETC_ENTRIES)
    ]


def etc_files(*, uid: int, home: Path, hostname: str) -> dict[str, str]:
    """The generated /etc files (pure): the project is the one user ``user`` with its uid,
    so shells and tools find a name and a home; root and nobody exist for tools that look."""
    passwd = (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"user:x:{uid}:{uid}:project:{home}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    group = f"root:x:0:\nuser:x:{uid}:\nnogroup:x:65534:\n"
    hosts = f"127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{hostname}\n"
    return {"passwd": passwd, "group": group, "hosts": hosts, "hostname": hostname + "\n"}


def python_paths(python: str = sys.executable) -> list[Path]:
    """What the agent needs to run, read-only: the interpreter `python` (its directory,
    and the installation it links to), the hub's own installation (a venv and the Python
    it was made from) and the cocalc_k8s package (an editable install lives outside the
    venv)."""
    import cocalc_k8s  # the package's own location, wherever it is installed

    real = os.path.realpath(python)
    candidates = [
        os.path.dirname(os.path.abspath(python)),
        os.path.dirname(os.path.dirname(real)) if real != os.path.abspath(python) else real,
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
        os.path.dirname(os.path.abspath(cocalc_k8s.__file__)),
    ]
    # Never a top-level directory (/tmp, /home, /root) as a whole: only installations.
    paths = [Path(os.path.abspath(c)) for c in candidates]
    return minimal_roots(p for p in paths if len(p.parts) > 2)


def minimal_roots(paths: Iterable[Path]) -> list[Path]:
    """The paths none of which lies inside another (or inside the system directories)."""
    system = [Path(d) for d in SYSTEM_DIRS]
    unique = sorted(set(paths))
    roots: list[Path] = []
    for path in unique:
        if any(path == r or r in path.parents for r in (*roots, *system)):
            continue
        roots.append(path)
    return roots


def _parents(path: Path, made: set[Path], mode: str = "0755") -> list[str]:
    """``--perms MODE --dir`` for each directory above `path` not made yet: bubblewrap
    would otherwise copy the host's mode (0700 for /root), and the project could not
    traverse to what is bound below."""
    args: list[str] = []
    for parent in reversed(path.parents):
        if parent == Path("/") or parent in made:
            continue
        made.add(parent)
        args += ["--perms", mode, "--dir", str(parent)]
    return args


def bwrap_command(
    spec: SandboxSpec,
    argv: Sequence[str],
    *,
    is_link: Mapping[str, str | None],
) -> list[str]:
    """The full command line that runs `argv` in the project's sandbox (pure).

    `is_link` tells, for each of `spec.system_dirs`, its link target if it is a symbolic
    link, None if it is a directory; a name missing from it does not exist here (see
    `system_layout`)."""
    args = [BWRAP, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"]
    args += ["--unshare-cgroup-try"]
    if spec.uid is None:
        args += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    args += ["--die-with-parent", "--new-session", "--hostname", spec.hostname]
    if spec.info_fd is not None:
        args += ["--info-fd", str(spec.info_fd)]
    if spec.seccomp_fd is not None:
        args += ["--seccomp", str(spec.seccomp_fd)]
    args += ["--tmpfs", "/"]
    for name in spec.system_dirs:
        if name not in is_link:
            continue
        target = is_link[name]
        args += ["--symlink", target, name] if target is not None else ["--ro-bind", name, name]
    args += ["--proc", "/proc", "--dev", "/dev"]
    size = str(spec.tmp_mb * 1024 * 1024)
    # Private tmpfs mounts inside the sandbox, not host paths.
    args += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm"]  # noqa: S108
    if spec.etc_view is not None:
        args += ["--ro-bind", str(spec.etc_view), "/etc"]
    else:
        args += ["--perms", "0755", "--dir", "/etc"]
        for name in spec.etc_entries:
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for name in GENERATED_ETC:
        args += ["--ro-bind", str(spec.etc_dir / name), f"/etc/{name}"]
    made = {Path("/tmp"), Path("/etc"), Path("/dev"), Path("/proc")}  # noqa: S108
    made |= {Path(name) for name in spec.system_dirs if name in is_link}
    for path in spec.read_only:
        args += _parents(path, made)
        args += ["--ro-bind", str(path), str(path)]
        made.add(path)
    args += _parents(spec.home, made, "0711")  # traversed, not listed
    args += ["--bind", str(spec.home), str(spec.home), "--chdir", str(spec.home)]
    if spec.uid is not None:
        args += [
            SETPRIV, f"--reuid={spec.uid}", f"--regid={spec.uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
        ]  # fmt: skip
    else:
        args += ["--"]
    return [*args, *argv]


def system_layout(names: Sequence[str] = SYSTEM_DIRS) -> dict[str, str | None]:
    """For `bwrap_command`: which system directories exist here, and which are links."""
    layout: dict[str, str | None] = {}
    for name in names:
        if os.path.islink(name):
            layout[name] = os.readlink(name)
        elif os.path.isdir(name):
            layout[name] = None
    return layout


def sandbox_available() -> str | None:
    """None when bubblewrap can make a project sandbox here (as the hub runs: without a user
    namespace as root, with one otherwise), else the reason, naming the fix. Runs a
    sandboxed ``true`` (tens of milliseconds, blocking: call it off the event loop)."""
    bwrap = shutil.which(BWRAP)
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed: install it (Debian: apt install bubblewrap)"
    if os.geteuid() == 0 and shutil.which(SETPRIV) is None:
        return "setpriv is not installed: install it (Debian: apt install util-linux)"
    probe = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"]
    if os.geteuid() != 0:
        probe += ["--unshare-user", "--disable-userns"]
    probe += ["--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    probe += ["true"]
    try:
        done = subprocess.run(  # noqa: S603 (a fixed command line)
            probe, capture_output=True, timeout=PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not be run: {exc}"
    if done.returncode == 0:
        return None
    reason = done.stderr.decode("utf-8", "replace").strip() or f"exit code {done.returncode}"
    fix = (
        "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
        "or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0), or run the hub as root"
        if os.geteuid() != 0
        else "check that the kernel allows new namespaces (containers may forbid them)"
    )
    return f"bubblewrap cannot make a sandbox here ({reason}): {fix}"
