"""What a browser sees when a named server of a project (JupyterLab, Jupyter, VS Code)
cannot be reached: which server, why (the agent's reason and the end of the server's
log) and what to do. Other clients get ``{"error": ...}`` with the same status."""

from __future__ import annotations

from html import escape

from cocalc_k8s.proxy import messages
from cocalc_k8s.proxy.messages import RequestHead
from cocalc_k8s.proxy.routing import Route

LABELS = {"jupyter": "Jupyter Notebook", "jupyterlab": "JupyterLab", "code": "VS Code"}
INSTALL = (
    "Install it where projects run: on one machine, <code>./scripts/serve.sh</code> "
    "installs the project environment (JupyterLab, Notebook, ipykernel and real-time "
    "collaboration); in a Kubernetes install the project image includes it. A project "
    "can also install it for itself from its terminal, e.g. "
    "<code>pip install --user jupyterlab jupyter-collaboration</code>."
)
CODE_INSTALL = (
    "VS Code in the browser is code-server: install it where projects run (npm package "
    "<code>code-server</code>, or in the project image), or from the project's terminal."
)
RETRY = (
    "Open the project's terminal or files, read the log named above and fix what it "
    "says (a missing package, a broken configuration file in <code>~/.jupyter</code>), "
    "then reload this page to try again. Restarting the project restarts its servers too."
)


def server_failed(
    head: RequestHead, route: Route, hub_url: str, status: int, message: str
) -> bytes:
    """The answer to a request for `route`'s named server that could not be started or
    reached (`message` from the agent: a reason, perhaps followed by log lines)."""
    if not messages.wants_html(head):
        return messages.error_response(head, status, message)
    label = LABELS.get(route.name or "", route.name or "the server")
    reason, _, log = message.partition("\n")
    advice = RETRY
    if status == 404:  # not installed
        advice = CODE_INSTALL if route.name == "code" else INSTALL
    page = (
        "<!doctype html><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(label)} could not start</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;"
        "padding:0 1rem}pre{background:#f4f4f4;padding:.75rem;overflow:auto}</style>"
        f'<h1 data-testid="server-failed">{escape(label)} could not start</h1>'
        f'<p data-testid="server-reason">{escape(reason)}</p>'
        + (f'<pre data-testid="server-log">{escape(log)}</pre>' if log else "")
        + f"<h2>What to do</h2><p>{advice}</p>"
        f'<p><a href="{escape(hub_url)}/projects/{route.project_id}">Back to the project</a>'
        "</p>"
    )
    return messages.simple_response(status, page.encode(), content_type=b"text/html; charset=utf-8")
