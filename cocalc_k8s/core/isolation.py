"""How projects are kept apart, and what follows for sign-up: pure decisions.

Decided once at start-up from what the machine allows (can bubblewrap run here?) and what
the admin said (`--trusted-users`). A hub whose projects cannot be sandboxed serves one
account unless its users trust each other: every project could read every other's files
and the hub's secrets, so a second account is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

# Shown wherever the cure is named: the start-up log, the admin page, the sign-up error.
SANDBOX_FIX = (
    "install bubblewrap (apt-get install bubblewrap) and allow unprivileged user "
    "namespaces (sysctl kernel.unprivileged_userns_clone=1 on kernels that have it, "
    "a non-zero user.max_user_namespaces), or start the hub with --trusted-users if every "
    "user may see every project"
)


@dataclass(frozen=True, slots=True)
class Isolation:
    """The start-up verdict. `problem` says why projects are not sandboxed (None when
    they are: a bubblewrap sandbox each, or a pod each on Kubernetes)."""

    sandboxed: bool
    trusted_users: bool
    problem: str | None = None
    backend: str = "local"

    @property
    def single_account(self) -> bool:
        """No sandbox and no word from the admin: only one account may exist."""
        return not self.sandboxed and not self.trusted_users

    def summary(self) -> str:
        """One sentence for the log and the admin page."""
        if self.sandboxed and self.backend == "kubernetes":
            return "Each project runs in a pod of its own, kept apart by the cluster."
        if self.sandboxed:
            return (
                "Each project runs in a bubblewrap sandbox of its own: it sees its home and a "
                "read-only system, nothing of the hub's data or of other projects."
            )
        if self.trusted_users:
            return (
                f"Projects run without a sandbox ({self.problem}) because the hub was started "
                "with --trusted-users: every project can read the others' files and the "
                "hub's data."
            )
        return (
            f"Projects cannot be sandboxed here ({self.problem}), so this hub serves one "
            f"account only and sign-up closes once it exists. To fix: {SANDBOX_FIX}."
        )


def decide_isolation(
    *, backend: str, sandbox_problem: str | None, trusted_users: bool
) -> Isolation:
    """Kubernetes pods are isolated by the cluster; local projects by bubblewrap, when it
    runs here (`sandbox_problem` is None)."""
    if backend == "kubernetes" or sandbox_problem is None:
        return Isolation(sandboxed=True, trusted_users=trusted_users, backend=backend)
    return Isolation(
        sandboxed=False, trusted_users=trusted_users, problem=sandbox_problem, backend=backend
    )


def sign_up_lock(isolation: Isolation, *, accounts: int) -> str | None:
    """Why sign-up is closed whatever the admin chose, or None: it is not forced. Shown
    to anyone who tries to sign up, so it names no detail of the machine (the admin page
    and the log do: `Isolation.summary`)."""
    if not isolation.single_account or accounts < 1:
        return None
    return (
        "sign-up is closed: projects cannot be sandboxed on this server, so it serves one "
        "account only; its admin can lift this (the admin page says how)"
    )
