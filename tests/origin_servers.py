"""Web servers that projects run in the content-origin tests (see tests/project_servers.py:
started as a project's own user). Only aiohttp is imported, so they start fast."""

from __future__ import annotations

from aiohttp import web

ATTACK_PAGE = """<!doctype html><meta charset=utf-8><title>innocent</title>
<h1 id=title>A useful project page</h1><pre id=results></pre>
<script>
const q = new URLSearchParams(location.search);
const other = q.get("other"), otherOrigin = q.get("other_origin");
const otherPort = q.get("other_port"), hub = q.get("hub");
const here = location.pathname.replace(/evil[.]html$/, "");
const results = {};
async function attempt(name, fn) {
  try { results[name] = await fn(); } catch (e) { results[name] = "blocked: " + e.name; }
}
(async () => {
  const secret = "/" + other + "/raw/secret.txt";
  const posing = {referrer: "/" + other + "/", credentials: "include"};  // a forged Referer
  await attempt("read_forged_referrer", async () => {
    const r = await fetch(secret, posing);
    return "read " + r.status + " " + (await r.text());
  });
  await attempt("read_other_origin", async () => {
    const r = await fetch(otherOrigin + secret, {credentials: "include"});
    return "read " + r.status + " " + (await r.text());
  });
  await attempt("put_forged_referrer", async () => {
    const r = await fetch("/" + other + "/raw/planted.txt",
      {...posing, method: "PUT", body: "planted by A"});
    return "wrote " + r.status;
  });
  await attempt("put_other_origin", async () => {
    const r = await fetch(otherOrigin + "/" + other + "/raw/planted.txt",
      {method: "PUT", body: "planted by A", credentials: "include"});
    return "wrote " + r.status;
  });
  await attempt("iframe", () => new Promise((resolve) => {
    const frame = document.createElement("iframe");
    // Through the hub's redirect: a same-site navigation when the hub shares the host.
    frame.src = hub + "/" + other + "/port/" + otherPort + "/page.html";
    frame.onload = () => {
      try {
        const doc = frame.contentDocument;
        resolve(doc ? "scripted: " + doc.body.innerText : "blocked: no document");
      } catch (e) { resolve("blocked: " + e.name); }
    };
    document.body.append(frame);
  }));
  await attempt("service_worker", async () => {
    const registration = await navigator.serviceWorker.register(here + "sw.js", {scope: "/"});
    return "registered " + registration.scope;
  });
  document.getElementById("results").textContent = JSON.stringify(results);
})();
</script>"""

WORKER = """self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("fetch", (event) => event.respondWith(new Response(
  "<p id=page>hijacked by A", {headers: {"Content-Type": "text/html"}})));
"""

TOSS_PAGE = """<!doctype html><meta charset=utf-8><title>tosser</title><pre id=done></pre>
<script>
for (const cookie of [
  "cocalc_session=tossed; Domain=localhost; Path=/",
  "cocalc_session=tossed; Domain=localhost; Path=/api/v2/account",
  "cocalc_session=tossed; Domain=127.0.0.1; Path=/",
  "__Host-cocalc_session=tossed; Path=/; Secure",
  "cocalc_session=tossed; Path=/",
]) { document.cookie = cookie; }
document.getElementById("done").textContent = document.cookie;
</script>"""


def attack_app() -> web.Application:
    """What both projects of tests/test_browser_cross_project.py serve (each as its own
    user): the attacker's pages and worker, the victim's page."""

    async def evil(request: web.Request) -> web.Response:
        return web.Response(text=ATTACK_PAGE, content_type="text/html")

    async def toss(request: web.Request) -> web.Response:
        return web.Response(text=TOSS_PAGE, content_type="text/html")

    async def worker(request: web.Request) -> web.Response:
        return web.Response(
            text=WORKER, content_type="text/javascript", headers={"Service-Worker-Allowed": "/"}
        )

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>B</title><p id=page>the victim's page</p>",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/{prefix:.*}/evil.html", evil)
    app.router.add_get("/{prefix:.*}/toss.html", toss)
    app.router.add_get("/{prefix:.*}/sw.js", worker)
    app.router.add_get("/{prefix:.*}/page.html", page)
    return app


def worker_app() -> web.Application:
    """For tests/test_content_origins.py, what a project might serve: a page, a Service
    Worker script that asks for a wide scope, and a WebSocket echo."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><p>hi", content_type="text/html")

    async def worker(request: web.Request) -> web.Response:
        return web.Response(
            text="self.addEventListener('fetch', () => {});",
            content_type="text/javascript",
            headers={"Service-Worker-Allowed": "/", "X-Content-Type-Options": "sniff-me"},
        )

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        async for msg in socket_:
            await socket_.send_str("echo:" + msg.data)
        return socket_

    app = web.Application()
    app.router.add_get("/{prefix:.*}/page.html", page)
    app.router.add_get("/{prefix:.*}/sw.js", worker)
    app.router.add_get("/{prefix:.*}/ws", ws)
    return app
