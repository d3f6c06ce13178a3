// The Terminal tab: xterm.js on the project's shared terminal WebSocket. Sends
// {"type":"input"} and {"type":"resize"} text frames; receives binary output and a final
// {"type":"exit","code"} text frame. Follows the panel's size (fit addon) and reconnects
// with backoff after a drop; the agent replays its scrollback on each connection.
// Copy and paste: Ctrl+Shift+C / Ctrl+Shift+V (Ctrl+C stays the shell's interrupt), the
// browser's own copy/paste (menus, Cmd+C/V), and the toolbar buttons.
import { Terminal, FitAddon } from "./vendor/xterm-6.0.0.js";
import { h } from "./api.js";

const NAME = "main";
const POLICY_VIOLATION = 1008;

function loadStylesheet(href) {
  if (document.querySelector(`link[href="${href}"]`)) return;
  document.head.append(h("link", { rel: "stylesheet", href }));
}

export function mount(panel, project) {
  loadStylesheet(new URL("./vendor/xterm-6.0.0.css", import.meta.url).pathname);
  const status = h("span", { class: "terminal-status muted", role: "status", "aria-live": "polite", "data-testid": "terminal-status" });
  const reconnectButton = h("button", { type: "button", class: "small secondary", hidden: true, onclick: () => connect() }, "Reconnect");
  const copyButton = h("button", { type: "button", class: "small secondary", title: "Copy the selection (Ctrl+Shift+C)", onclick: () => copySelection() }, "Copy");
  const pasteButton = h("button", { type: "button", class: "small secondary", title: "Paste (Ctrl+Shift+V)", onclick: () => pasteClipboard() }, "Paste");
  const host = h("div", { class: "terminal-host", "data-testid": "terminal" });
  panel.replaceChildren(
    h("div", { class: "terminal-toolbar" }, status, h("span", { class: "spacer" }), copyButton, pasteButton, reconnectButton),
    host,
  );

  const darkScheme = matchMedia("(prefers-color-scheme: dark)");
  const themeFor = (dark) => (dark
    ? { background: "#12151c", foreground: "#e6e9f0", cursor: "#e6e9f0", selectionBackground: "#3a4a6b" }
    : { background: "#ffffff", foreground: "#1d2330", cursor: "#1d2330", selectionBackground: "#b9cdfa" });
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace',
    fontSize: 14,
    scrollback: 5000,
    theme: themeFor(darkScheme.matches),
  });
  darkScheme.addEventListener("change", (e) => { term.options.theme = themeFor(e.matches); });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  term.textarea?.setAttribute("aria-label", "Terminal input");

  let socket = null;
  let retry = 0;
  let retryTimer = null;
  let exited = false;
  let visible = false;

  const send = (message) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  };

  function setStatus(text) {
    status.textContent = text;
  }

  function connect() {
    clearTimeout(retryTimer);
    reconnectButton.hidden = true;
    exited = false;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}${project.api}/terminals/${NAME}`;
    setStatus(project.state === "running" ? "Connecting…" : "Starting the project…");
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    socket = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      retry = 0;
      term.reset();
      setStatus("Connected");
      resize();
      if (visible) term.focus();
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") {
        term.write(new Uint8Array(e.data));
        return;
      }
      let message;
      try { message = JSON.parse(e.data); } catch { return; }
      if (message.type === "exit") {
        exited = true;
        term.write(`\r\n\x1b[2m[the shell exited with code ${message.code}; press Enter for a new one]\x1b[0m\r\n`);
        setStatus("The shell exited");
      }
    };
    ws.onclose = (e) => {
      if (socket !== ws) return;
      socket = null;
      if (exited) return;
      if (e.code === POLICY_VIOLATION) {
        setStatus("You no longer have access to this project.");
        return;
      }
      const delay = Math.min(15, 2 ** retry);
      retry += 1;
      setStatus(opened ? `Disconnected; reconnecting in ${delay} s…` : `Could not connect; retrying in ${delay} s…`);
      reconnectButton.hidden = false;
      retryTimer = setTimeout(connect, delay * 1000);
    };
  }

  function resize() {
    if (!visible || !host.clientWidth) return;
    try { fit.fit(); } catch { return; }
    send({ type: "resize", rows: term.rows, cols: term.cols });
  }

  async function copySelection() {
    const text = term.getSelection();
    if (text) {
      try { await navigator.clipboard.writeText(text); } catch { setStatus("The browser did not allow copying; use its Copy menu"); }
    }
    term.focus();
  }

  async function pasteClipboard() {
    try {
      const text = await navigator.clipboard.readText();
      if (text) term.paste(text); // bracketed paste when the shell asked for it
    } catch {
      setStatus("The browser did not allow reading the clipboard; use its Paste menu");
    }
    term.focus();
  }

  term.attachCustomKeyEventHandler((event) => {
    if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey || event.altKey) return true;
    const key = event.key.toLowerCase();
    if (key === "c") { event.preventDefault(); copySelection(); return false; }
    if (key === "v") { event.preventDefault(); pasteClipboard(); return false; }
    return true;
  });

  term.onData((data) => {
    if (exited) {
      if (data === "\r") connect();
      return;
    }
    send({ type: "input", data });
  });
  new ResizeObserver(() => resize()).observe(host);

  return {
    show() {
      visible = true;
      if (!socket) connect();
      requestAnimationFrame(() => { resize(); term.focus(); });
    },
    hide() {
      visible = false;
    },
  };
}
