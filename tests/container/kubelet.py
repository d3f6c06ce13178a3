"""The test kubelet with real containers: each project pod the hub creates on the emulated
API server runs as a podman container of the project image, with the pod's security
settings, resources and volumes (tests/container/podman.py `pod_run_args`).

    network   podman's bridge: a network namespace per pod, the pod's IP is the
              container's, the agent on its configured port (no annotation), every port
              of the pod reachable from the hub as in a cluster
    volumes   NFS export / claim -> a bind mount of the hub's storage (its data
              directory), emptyDir -> tmpfs, the token Secret -> a file root:fsGroup 0440
    ready     the agent answers HTTP (it listens only once it has its token)
    ended     `podman wait`: exit code, OOMKilled from `podman inspect`
    deleted   `podman stop -t <terminationGracePeriodSeconds>`, then removed

A pod the kubelet cannot run faithfully (an unsupported field) is recorded in `errors` and
fails the pod; the fixture asserts `errors` is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.container.podman import pod_run_args
from tests.k8s_emulator import Obj, Store
from tests.k8s_kubelet import TestKubelet, _container

READY_TIMEOUT = 60
RUN_ATTEMPTS = 3


@dataclass
class Container:
    """A pod's container, known by its id: a pod deleted and created again has the same
    name, and the old container's removal must not reach the new one."""

    id: str
    name: str
    ip: str
    grace: int


class ContainerKubelet(TestKubelet):
    __test__ = False

    def __init__(
        self,
        store: Store,
        storage: Path,
        podman: list[str],
        namespace: str = "cocalc",
        *,
        aliases: dict[str, str] | None = None,
    ) -> None:
        """`aliases` maps image names pods ask for to local images (as a node that has the
        built image under the name the hub's settings give it)."""
        super().__init__(store, storage / "projects", namespace)
        self.storage = storage
        self.podman = podman
        self.aliases = dict(aliases or {})
        self.errors: list[str] = []
        self.agent_port = 6000
        self._secrets = Path(tempfile.mkdtemp(prefix="cocalc-test-secrets-"))

    async def close(self) -> None:
        await super().close()
        shutil.rmtree(self._secrets, ignore_errors=True)

    async def run_podman(self, *args: str, check: bool = True) -> str:
        code, out, err = await self._podman(*args)
        if check and code != 0:
            raise RuntimeError(f"podman {args[0]}: {err.decode().strip()[-500:]}")
        return out.decode().strip()

    async def _podman(self, *args: str) -> tuple[int, bytes, bytes]:
        """podman's exit code and output; a call cancelled (the kubelet stopping) kills
        and reaps its process, so nothing of it outlives the test's event loop."""
        process = await asyncio.create_subprocess_exec(
            *self.podman, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            out, err = await process.communicate()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.communicate()
            raise
        return int(process.returncode or 0), out, err

    async def _image_present(self, image: str) -> bool:
        code, _, _ = await self._podman("image", "exists", self.aliases.get(image, image))
        return code == 0

    def _secret_file(self, pod: Obj, token: str) -> Any:
        fs_group = pod["spec"]["securityContext"].get("fsGroup", 0)
        folder = self._secrets / pod["metadata"]["name"]
        folder.mkdir(exist_ok=True)

        def path(secret: str, key: str) -> str:
            file = folder / f"{secret}.{key}"
            file.write_text(token)  # the only Secret a project pod mounts is its token
            os.chown(file, 0, fs_group)
            file.chmod(0o440)
            return str(file)

        return path

    async def _start_agent(self, pod: Obj, token: str) -> Container:
        try:
            return await self._start_container(pod, token)
        except Exception as error:  # every failure to run a pod fails the test
            name = pod["metadata"]["name"]
            self.errors.append(f"{name}: {error!r}")
            image = pod["spec"]["containers"][0]["image"]
            ended = {"terminated": {"exitCode": 128, "reason": "Error", "message": str(error)}}
            self._update(name, phase="Failed", containerStatuses=[_container(image, ended)])
            raise

    async def _start_container(self, pod: Obj, token: str) -> Container:
        name = pod["metadata"]["name"]
        pod = copy.deepcopy(pod)
        (container,) = pod["spec"]["containers"]
        container["image"] = self.aliases.get(container["image"], container["image"])
        args = pod_run_args(pod, storage=self.storage, secret=self._secret_file(pod, token))
        await self.run_podman("rm", "-f", "-t", "0", name, check=False)  # a leftover of a crash
        ident = (await self._run_container(name, args)).splitlines()[-1]
        ip = await self.run_podman("inspect", "-f", "{{.NetworkSettings.IPAddress}}", ident)
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        container = Container(ident, name, ip, grace)
        await self._ready(container)
        return container

    async def _run_container(self, name: str, args: list[str]) -> str:
        """`podman run`, tried again when runc itself failed to create the container (it
        does now and then on a loaded machine: "can't get final child's PID from pipe"),
        as a kubelet retries a container that failed to create. A refused spec is never
        tried again."""
        for attempt in range(RUN_ATTEMPTS):
            try:
                return await self.run_podman("run", *args)
            except RuntimeError as error:
                if "OCI runtime error" not in str(error) or attempt == RUN_ATTEMPTS - 1:
                    raise
                await self.run_podman("rm", "-f", "-t", "0", name, check=False)
        raise AssertionError("unreachable")

    async def _ready(self, container: Container) -> None:
        """Until the agent answers HTTP (401 without the token is an answer)."""
        url = f"http://{container.ip}:{self.agent_port}/health"
        async with asyncio.timeout(READY_TIMEOUT), aiohttp.ClientSession() as http:
            while True:
                state = await self.run_podman("inspect", "-f", "{{.State.Status}}", container.id)
                if state not in ("created", "running"):
                    logs = await self.run_podman("logs", container.id, check=False)
                    raise RuntimeError(f"{container.name} ended at start: {logs[-2000:]}")
                try:
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)):
                        return
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(0.1)

    def _address(self, agent: Container) -> tuple[str, int | None]:
        return agent.ip, None

    async def _wait_agent(self, agent: Container) -> tuple[int, str]:
        """The container's exit code, once it has exited. `podman wait` itself fails now
        and then on a loaded machine (it printed an error, and a running agent was taken
        for one killed, exit 137): a container still running is waited for again."""
        while True:
            answer = await self.run_podman("wait", agent.id, check=False)
            if answer.lstrip("-").isdigit():
                code = int(answer)
                break
            state = await self.run_podman(
                "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", agent.id, check=False
            )
            status, _, exit_code = state.partition(" ")
            if status in ("created", "running", "paused", "stopping"):
                await asyncio.sleep(0.5)
                continue
            code = int(exit_code) if exit_code.lstrip("-").isdigit() else 137  # gone
            break
        oom = await self.run_podman("inspect", "-f", "{{.State.OOMKilled}}", agent.id, check=False)
        return code, "OOMKilled" if oom == "true" else "Error"

    async def _stop_agent(self, agent: Container) -> None:
        await self.run_podman("stop", "-t", str(agent.grace), agent.id, check=False)
        await self.run_podman("rm", "-f", agent.id, check=False)
