"""Which file a request to a project's Jupyter server saves (`proxy.jupyter_saves`)."""

from __future__ import annotations

from cocalc_k8s.proxy.jupyter_saves import saved_path
from cocalc_k8s.proxy.routing import parse_route

P = "00000000-0000-4000-8000-000000000000"


def test_a_contents_put_names_the_saved_file() -> None:
    route = parse_route(f"/{P}/port/jupyterlab/api/contents/dir/My%20notes.ipynb?x=1")
    assert saved_path(b"PUT", route) == "dir/My notes.ipynb"
    assert saved_path(b"GET", route) is None
    stripped = parse_route(f"/{P}/server/jupyterlab/api/contents/a.py")
    assert saved_path(b"PUT", stripped) == "a.py"
    for other in (
        f"/{P}/port/jupyterlab/api/kernels/k",
        f"/{P}/port/8888/api/contents/a.py",
        f"/{P}/port/jupyterlab/api/contents/",
        f"/{P}/port/code/api/contents/a",
    ):
        assert saved_path(b"PUT", parse_route(other)) is None
