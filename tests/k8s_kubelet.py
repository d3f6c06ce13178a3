"""A test "kubelet" for the emulated API server: it runs each new project pod as a real
project agent (a local process) and reports the pod's life as a kubelet would.

    new pod   -> bound to a node (PodScheduled), Events Scheduled/Pulling/Pulled
              -> the token read from the Secret the hub created (waiting for it)
              -> `python -m cocalc_k8s.agent --home <projects>/<id> --port 0`
              -> Events Created/Started; status Running + Ready, podIP 127.0.0.1 and
                 the agent's port in the `cocalc.io/agent-port` annotation
    image in `broken_images` -> ErrImagePull, then ImagePullBackOff (stays Pending)
    agent exits on its own   -> phase Failed with the container's exit code (OOMKilled
                                when it was SIGKILLed)
    deletionTimestamp        -> the agent is stopped and the pod removed
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import signal
import uuid
from pathlib import Path
from typing import Any

from cocalc_k8s.agent.launch import AgentProcess, start_agent
from tests.k8s_emulator import Obj, Store, Watcher, now

NODE = "test-node"


class TestKubelet:
    __test__ = False

    def __init__(self, store: Store, projects_root: Path, namespace: str = "cocalc") -> None:
        self.store = store
        self.projects_root = projects_root
        self.namespace = namespace
        self.broken_images: set[str] = set()
        self.agents: dict[str, AgentProcess] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watcher = Watcher("pods", namespace, "run=project", "")
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.store.watchers.append(self._watcher)
        self._loop = asyncio.create_task(self._run())

    async def close(self) -> None:
        self.store.watchers.remove(self._watcher)
        for task in [self._loop, *self._tasks]:
            if task is not None:
                task.cancel()
        for agent in self.agents.values():
            await self._stop_agent(agent)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        while True:
            event = await self._watcher.queue.get()
            assert event is not None
            pod = event["object"]
            name = pod["metadata"]["name"]
            if event["type"] == "ADDED":
                self._spawn(self._run_pod(name))
            elif event["type"] == "MODIFIED" and pod["metadata"].get("deletionTimestamp"):
                self._spawn(self._terminate(name, pod["metadata"]["uid"]))

    def _pod(self, name: str) -> Obj | None:
        return self.store.get("pods", self.namespace, name)

    def _event(self, pod: Obj, reason: str, message: str, kind: str = "Normal") -> None:
        meta = pod["metadata"]
        self.store.put("events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:8]}",
                         "namespace": self.namespace, "uid": str(uuid.uuid4())},
            "involvedObject": {"kind": "Pod", "name": meta["name"], "uid": meta["uid"],
                               "namespace": self.namespace},
            "reason": reason, "message": message, "type": kind, "lastTimestamp": now(),
        }, added=True)  # fmt: skip

    def _update(self, name: str, **status: Any) -> Obj | None:
        pod = self._pod(name)
        if pod is None:
            return None
        pod["status"].update(status)
        return self.store.put("pods", pod)

    async def _run_pod(self, name: str) -> None:
        pod = self._pod(name)
        if pod is None:
            return
        uid = pod["metadata"]["uid"]
        pod["spec"]["nodeName"] = NODE
        pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        self.store.put("pods", pod)
        image = pod["spec"]["containers"][0]["image"]
        self._event(pod, "Scheduled", f"Successfully assigned {name} to {NODE}")
        self._event(pod, "Pulling", f'Pulling image "{image}"')
        if image in self.broken_images or not await self._image_present(image):
            await self._fail_pull(pod, image)
            return
        self._event(pod, "Pulled", f'Successfully pulled image "{image}"')
        token = await self._token(pod)
        agent = await self._start_agent(pod, token)
        self.agents[name] = agent
        pod = self._pod(name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            await self._terminate(name, uid)
            return
        self._event(pod, "Created", "Created container agent")
        self._event(pod, "Started", "Started container agent")
        ip, port = self._address(agent)
        if port is not None:
            pod["metadata"].setdefault("annotations", {})["cocalc.io/agent-port"] = str(port)
        pod["status"].update(
            phase="Running",
            podIP=ip,
            conditions=[{"type": t, "status": "True"} for t in ("PodScheduled", "Ready")],
            containerStatuses=[_container(image, {"running": {"startedAt": now()}}, True)],
        )
        self.store.put("pods", pod)
        self._spawn(self._monitor(name, agent, image))

    async def _fail_pull(self, pod: Obj, image: str) -> None:
        message = f'Failed to pull image "{image}": not found'
        self._event(pod, "Failed", message, "Warning")
        for reason in ("ErrImagePull", "ImagePullBackOff"):
            waiting = {"waiting": {"reason": reason, "message": message}}
            self._update(pod["metadata"]["name"], containerStatuses=[_container(image, waiting)])

    async def _token(self, pod: Obj) -> str:
        """The token from the Secret the pod mounts, once the hub has created it."""
        name = pod["spec"]["volumes"][-1]["secret"]["secretName"]
        watcher = Watcher("secrets", self.namespace, "", f"metadata.name={name}")
        self.store.watchers.append(watcher)
        try:
            while (secret := self.store.get("secrets", self.namespace, name)) is None:
                await watcher.queue.get()
        finally:
            self.store.watchers.remove(watcher)
        return base64.b64decode(secret["data"]["token"]).decode()

    # How the pod's container runs: here a local agent process (TestKubelet); a real
    # container in tests/container/kubelet.py.

    async def _image_present(self, image: str) -> bool:
        return True

    async def _start_agent(self, pod: Obj, token: str) -> Any:
        home = self.projects_root / pod["metadata"]["labels"]["project_id"]
        return await asyncio.to_thread(start_agent, home, token=token)

    def _address(self, agent: Any) -> tuple[str, int | None]:
        """(podIP, the agent's port when it is not the configured one)."""
        return "127.0.0.1", agent.port

    async def _wait_agent(self, agent: Any) -> tuple[int, str]:
        """(exit code, reason) once the container has ended."""
        code = await asyncio.to_thread(agent.process.wait)
        reason = "OOMKilled" if code == -signal.SIGKILL else "Error"
        return (137 if code < 0 else code), reason

    async def _stop_agent(self, agent: Any) -> None:
        await asyncio.to_thread(agent.stop, 5)

    async def _monitor(self, name: str, agent: AgentProcess, image: str) -> None:
        code, reason = await self._wait_agent(agent)
        pod = self._pod(name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        if self.agents.get(name) is not agent:  # a new pod of the same name runs now
            return
        done = {"terminated": {"exitCode": code, "reason": reason}}
        self._update(name, phase="Failed", containerStatuses=[_container(image, done)],
                     conditions=[{"type": "Ready", "status": "False"}])  # fmt: skip

    async def _terminate(self, name: str, uid: str) -> None:
        """Stop the agent of pod `uid` and remove the pod, unless a new pod of the same
        name has been created meanwhile (each status update of a deleting pod is an event,
        so several of these may run at once)."""
        agent = self.agents.pop(name, None)
        if agent is not None:
            await self._stop_agent(agent)
        pod = self._pod(name)
        if pod is not None and pod["metadata"]["uid"] == uid:
            with contextlib.suppress(KeyError):
                self.store.remove("pods", self.namespace, name)


def _container(image: str, state: dict[str, Any], ready: bool = False) -> dict[str, Any]:
    return {"name": "agent", "image": image, "imageID": "", "ready": ready,
            "restartCount": 0, "state": state}  # fmt: skip
