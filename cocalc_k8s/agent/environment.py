"""The environment of the processes the agent starts (commands, shells).

Built from a whitelist, never copied: the agent's own environment may carry whatever the
launcher had (hub settings, a database URL), and the token must never reach a project
process.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ")  # harmless and useful if the launcher set them


def user_shell() -> str:
    """$SHELL if it is an executable, else /bin/bash."""
    shell = os.environ.get("SHELL", "")
    if shell.startswith("/") and os.access(shell, os.X_OK):
        return shell
    return "/bin/bash"


def has_passwd_entry() -> bool:
    try:
        pwd.getpwuid(os.getuid())
    except KeyError:
        return False
    return True


def user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER", "user")


def child_environment(home: Path, *, term: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("LANG", "C.UTF-8")
    user = user_name()
    env.update(HOME=str(home), USER=user, LOGNAME=user, SHELL=user_shell(), TERM=term)
    # `pip install --user` into the home, refused by Debian's Python (PEP 668) otherwise. The
    # system's packages are not the project's to change (read-only in the sandbox, another
    # user's files out of it); a user install only shadows them for this project, which can
    # remove ~/.local again.
    env["PIP_BREAK_SYSTEM_PACKAGES"] = "1"
    if not has_passwd_entry():
        # A project's own uid (the local backend as root) has no passwd entry, and bash
        # would show "I have no name!" for \u in the prompt: show $USER instead.
        env["PROMPT_COMMAND"] = r"PS1=${PS1//\\u/$USER}"
    return env
