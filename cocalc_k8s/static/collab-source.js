// The shared document as a document source (see document-source.js for the shape): the
// file's text as a Yjs document that every collaborator who opens the file edits at once,
// over the hub's realtime channel (realtime.js; the protocol is docs/realtime.md).
//
// Durability is the hub's: a local edit counts as saved only when the hub acknowledges
// it, which it does once the edit is committed to its database. Until then the edit is
// "unsent"; after a reconnect it reaches the hub anyway through the join's sync.
//
// Epochs: when the hub rebuilds a document from the file (a new epoch), the old Y.Doc must
// never be merged into it (the text would appear twice). The source then starts a fresh
// Y.Doc from the hub's state and re-applies, as a text diff, only the local edits the hub
// had not acknowledged: the `shadow` Y.Doc holds exactly what the hub has (its updates
// plus the acknowledged local ones), so the diff from its text to the editor's is them.
import * as cm from "./vendor/codemirror-6.43.15.js";
import { fileSource, peek, statusBox } from "./document-source.js";
import { colorOf } from "./people.js";

// Yjs, y-codemirror.next and the socket (about 50 KB gzipped) load while the editor
// already shows the file's text: they are not on the way to a usable editor.
let Y, awarenessProtocol, yCollab, yUndoManagerKeymap, channel;
let libraries = null;
function loadLibraries() {
  libraries ??= Promise.all([import("./vendor/yjs-13.6.33.js"), import("./realtime.js")]).then(
    ([yjs, realtime]) => {
      ({ Y, awarenessProtocol, yCollab, yUndoManagerKeymap } = yjs);
      channel = realtime;
    },
  );
  return libraries;
}

const HUB = "hub"; // the origin of everything applied from the hub: not sent back, not undone
const RESYNC = "resync"; // the origin of local edits re-applied after a rebuild
const RETRY_MS = 1_000;
const CONTEXT = 32; // characters of context used to place a re-applied edit
// A file up to this size is shown from a plain GET while the join is still under way
// (the editor is ready sooner; edits made meanwhile are merged in as a diff).
const PEEK_BYTES = 1_000_000;

/** The source for `path`: the shared document, or, for a file the hub refuses to share
 * (binary, too large), the plain file read-only with the hub's explanation. */
export function openSource(project, path) {
  return sharedSource(project, path);
}

function sharedSource(project, path) {
  const status = statusBox();
  const peers = peersBox();
  const binding = new cm.Compartment();
  const color = colorOf(project.accountId);
  const pending = new Set(); // local updates the hub has not acknowledged
  let fallback = null; // the read-only plain file, when the hub refuses to share
  let doc = null; // the hub's id of the document, once joined
  let epoch = null;
  let ydoc, ytext, shadow, awareness, undoManager;
  let view = null;
  let joined = false; // updates may be sent (joined on the current connection)
  let joining = false;
  let incoming = []; // updates that arrived while a join was in flight
  let chain = Promise.resolve(); // joins run one at a time
  let ended = null; // {message}: the hub closed the document for us; no more edits
  let early = null; // the file's text the editor shows until the first join binds it
  let bindOnView = false; // the first join came before the editor existed
  let closed = false;
  const stops = [];

  const handlers = {
    onUpdate(message) {
      if (joining) incoming.push(message);
      else if (message.epoch === epoch) applyFromHub(message.update);
      // another epoch's update: the `resync` that announces the rebuild follows
    },
    onAwareness(update) {
      awarenessProtocol.applyAwarenessUpdate(awareness, update, HUB);
    },
    onPresence(people) {
      peers.set(people);
    },
    onResync() {
      queueJoin({ fresh: true });
    },
    onClosed(message) {
      end(message.message || "This document was closed by the hub.");
    },
  };

  function newDocument() {
    undoManager?.destroy();
    awareness?.destroy();
    ydoc?.destroy();
    shadow?.destroy();
    ydoc = new Y.Doc();
    ytext = ydoc.getText("text");
    shadow = new Y.Doc();
    awareness = new awarenessProtocol.Awareness(ydoc);
    // The hub writes the account's real name into `name`; the colour is ours to pick.
    awareness.setLocalStateField("user", { name: "", color, colorLight: `${color}33` });
    undoManager = new Y.UndoManager(ytext, { trackedOrigins: new Set([null, RESYNC]) });
    const mine = ydoc;
    ydoc.on("update", (update, origin) => { if (ydoc === mine) localUpdate(update, origin); });
    const aware = awareness;
    aware.on("update", ({ added, updated, removed }, origin) => {
      // Only our own state: the hub refuses updates about other clients (the periodic
      // clean-up of silent peers is local business).
      if (origin === HUB || !joined || ydoc !== mine) return;
      if (!added.concat(updated, removed).includes(mine.clientID)) return;
      channel.send("awareness", { doc, update: awarenessProtocol.encodeAwarenessUpdate(aware, [mine.clientID]) });
    });
  }

  function applyFromHub(update) {
    Y.applyUpdate(ydoc, update, HUB);
    Y.applyUpdate(shadow, update, HUB);
  }

  function localUpdate(update, origin) {
    if (origin === HUB || ended) return;
    pending.add(update);
    if (joined && !joining && channel.isConnected()) transmit(update);
    refresh();
  }

  /** Sends local updates (one, or the catch-up of a join that covers `covers`) and keeps
   * them pending until the hub acknowledges the commit. */
  async function transmit(update, covers = [update]) {
    const mine = { ydoc, shadow };
    const ack = await channel.sendUpdate(doc, epoch, update);
    if (ydoc !== mine.ydoc) return; // rebuilt meanwhile: the diff carried these edits
    if (ack.ok) {
      for (const u of covers) pending.delete(u);
      Y.applyUpdate(mine.shadow, update, HUB);
    } else {
      afterRefusal(ack.error, update, covers);
    }
    refresh();
  }

  function afterRefusal(error, update, covers) {
    switch (error.code) {
      case "disconnected": // still pending: the next join's sync sends it
        break;
      case "unavailable": // the hub's database failed: updates are idempotent, try again
        setTimeout(() => { if (joined && covers.some((u) => pending.has(u))) transmit(update, covers); }, RETRY_MS);
        break;
      case "stale-epoch":
      case "bad-update":
        queueJoin({ fresh: true });
        break;
      case "not-joined":
        queueJoin({ fresh: false });
        break;
      case "read-only":
        end("This file is now read-only (binary, or too large to share); your last edits were not saved.");
        break;
      default:
        for (const u of covers) pending.delete(u);
        status.set({ kind: "error", text: "Not saved", error: `An edit was refused: ${error.message}` });
    }
  }

  function queueJoin(options) {
    chain = chain.then(() => (closed || ended ? null : join(options))).catch((err) => {
      status.set({ kind: "error", text: "Not connected", error: `Could not reopen ${path}: ${err.message}` });
    });
    return chain;
  }

  /** Joins (or re-joins) the document on the current connection. `fresh` asks for the
   * whole state (a rebuilt document); otherwise the hub sends what this Y.Doc lacks. */
  async function join({ fresh }) {
    if (!channel.isConnected()) return null; // the next connect joins again
    const first = doc === null;
    joining = true;
    joined = false;
    incoming = [];
    refresh();
    const ack = await channel.request("join", {
      project_id: project.id,
      path,
      epoch: first || fresh ? null : epoch,
      state_vector: first || fresh ? null : Y.encodeStateVector(ydoc),
    });
    joining = false;
    if (!ack.ok) {
      if (ack.error.code === "disconnected") return null;
      if (ack.error.code === "unavailable" && !first) {
        setTimeout(() => queueJoin({ fresh }), RETRY_MS);
        return null;
      }
      throw new Error(ack.error.message || ack.error.code);
    }
    if (ack.read_only) return ack;
    const arrived = [...(first ? channel.register(ack.doc, handlers) : []), ...incoming];
    incoming = [];
    const sameEpoch = arrived.filter((m) => m.epoch === ack.epoch).map((m) => m.update);
    const state = ack.update ? [new Uint8Array(ack.update), ...sameEpoch] : sameEpoch;
    if (first) {
      doc = ack.doc;
      epoch = ack.epoch;
      for (const u of state) applyFromHub(u);
    } else if (fresh || ack.stale || ack.epoch !== epoch) {
      rebuild(ack, state);
    } else {
      for (const u of state) applyFromHub(u);
    }
    joined = true;
    // Everyone already there (the hub sends their awareness with the ack).
    if (ack.awareness) awarenessProtocol.applyAwarenessUpdate(awareness, new Uint8Array(ack.awareness), HUB);
    // What the hub lacks: the local edits it never acknowledged (sent before a disconnect,
    // or made offline). One catch-up update carries them all.
    if (pending.size) {
      const covers = [...pending];
      transmit(Y.encodeStateAsUpdate(ydoc, new Uint8Array(ack.state_vector)), covers);
    }
    const local = awareness.getLocalState();
    if (local) channel.send("awareness", { doc, update: awarenessProtocol.encodeAwarenessUpdate(awareness, [ydoc.clientID]) });
    refresh();
    return ack;
  }

  /** A new epoch: a fresh Y.Doc from the hub's state, the editor rebound to it, and the
   * unacknowledged local edits re-applied as a text diff. */
  function rebuild(ack, state) {
    const theirs = shadow.getText("text").toString();
    const mine = ytext.toString();
    const oldClient = ydoc.clientID;
    const oldAwareness = awareness;
    pending.clear();
    epoch = ack.epoch;
    doc = ack.doc;
    newDocument();
    for (const u of state) applyFromHub(u);
    // The others drop the old cursor (destroying the old awareness removed its state).
    channel.send("awareness", { doc, update: awarenessProtocol.encodeAwarenessUpdate(oldAwareness, [oldClient]) });
    view?.dispatch({ effects: binding.reconfigure([]) });
    rebind(theirs, mine);
  }

  /** Binds the (unbound) editor to the current Y.Text once the edit from `theirs` to
   * `mine` (what the hub does not have) is made again in it. The editor goes from its
   * text to the result by one minimal change, so its cursor stays where the user is
   * typing (resetting it to the hub's text and re-inserting the edit would leave the
   * cursor before the re-inserted text, and the next keys would land there). */
  function rebind(theirs, mine) {
    const edit = textChange(theirs, mine);
    if (edit) {
      const placed = place(edit, theirs, ytext.toString());
      ydoc.transact(() => {
        if (placed.to > placed.from) ytext.delete(placed.from, placed.to - placed.from);
        if (placed.insert) ytext.insert(placed.from, placed.insert);
      }, RESYNC);
    }
    if (view) {
      const change = textChange(view.state.doc.toString(), ytext.toString());
      if (change) view.dispatch({ changes: change });
      view.dispatch({ effects: binding.reconfigure(collaboration()) });
    }
  }

  /** The first join ended after the editor showed the peeked text. */
  function bindEarly() {
    if (!view) {
      bindOnView = true;
      return;
    }
    const theirs = early;
    early = null;
    rebind(theirs, view.state.doc.toString());
    refresh();
  }

  function end(message) {
    ended = { message };
    joined = false;
    view?.dispatch({ effects: binding.reconfigure([cm.EditorState.readOnly.of(true), cm.EditorView.editable.of(false)]) });
    if (doc) channel.unregister(doc, handlers);
    refresh();
  }

  function refresh() {
    if (fallback || closed) return;
    if (!channel) {
      status.set(early !== null ? { kind: "saving", text: "Connecting…" } : { kind: "loading", text: "Loading…" });
      return;
    }
    const state = channel.connectionState();
    if (ended) {
      status.set({ kind: "error", text: "Read-only", error: ended.message });
    } else if (state === "revoked") {
      status.set({ kind: "error", text: "Signed out", error: `${channel.revokedMessage() || "Your session ended."} Sign in again to keep editing; unsaved edits stay in this page until you leave it.` });
    } else if (state === "offline") {
      status.set({ kind: "offline", text: pending.size ? "Offline, not saved" : "Offline" });
    } else if (early !== null) {
      status.set({ kind: "saving", text: "Connecting…" });
    } else if (joining || !joined) {
      status.set({ kind: "saving", text: doc === null ? "Loading…" : "Reconnecting…" });
    } else if (pending.size) {
      status.set({ kind: "saving", text: "Saving…" });
    } else {
      status.set({ kind: "saved", text: "Saved" });
    }
  }

  function collaboration() {
    return [yCollab(ytext, awareness, { undoManager }), cm.keymap.of(yUndoManagerKeymap)];
  }

  return {
    kind: "shared",
    path,
    async open() {
      const peeked = peek(project, path, PEEK_BYTES); // under way while the libraries load
      const first = loadLibraries().then(() => {
        if (closed) throw new Error("closed");
        follow();
        return firstJoin();
      });
      chain = first.catch(() => {});
      // Whichever comes first: the shared document, or the file's text (bound later).
      const text = await Promise.race([first.then(() => null), peeked]);
      if (text !== null && doc === null) {
        early = text;
        refresh();
        first.then(
          (ack) => {
            if (ack.read_only) end(ack.message);
            else if (!closed) {
              stops.push(channel.onReconnect(() => queueJoin({ fresh: false })));
              bindEarly();
            }
          },
          (err) => { if (!closed) end(`Could not open ${path} for editing: ${err.message}`); },
        );
        return { text, readOnly: false, notice: null };
      }
      const ack = await first; // a refusal (not found, forbidden) is the editor's to show
      if (ack.read_only) {
        fallback = fileSource(project, path, { readOnly: true, notice: ack.message, binary: ack.reason === "binary" });
        stops.push(fallback.onStatus((s) => status.set(s)));
        return fallback.open();
      }
      stops.push(channel.onReconnect(() => queueJoin({ fresh: false })));
      return { text: ytext.toString(), readOnly: false, notice: null };
    },
    extensions() {
      if (fallback) return fallback.extensions();
      return [
        binding.of(early === null ? collaboration() : []),
        // Names over the remote cursors stay visible (y-codemirror.next shows them on hover).
        cm.EditorView.theme({ ".cm-ySelectionInfo": { opacity: 0.85 } }),
        cm.ViewPlugin.define((v) => {
          view = v;
          // A plugin may not dispatch while the view is being built: bind just after.
          if (bindOnView) queueMicrotask(() => { bindOnView = false; if (view === v) bindEarly(); });
          return { destroy: () => { if (view === v) view = null; } };
        }),
      ];
    },
    onStatus: (fn) => status.on(fn),
    onPeers: (fn) => peers.on(fn),
    flush: async () => {}, // every edit is sent at once; nothing waits for a save
    pending: () => pending.size > 0 || (early !== null && view !== null && view.state.doc.toString() !== early),
    close() {
      closed = true;
      for (const stop of stops) stop();
      if (fallback) return fallback.close();
      if (doc && !ended) {
        awarenessProtocol.removeAwarenessStates(awareness, [ydoc.clientID], "local");
        channel.request("leave", { doc });
        channel.unregister(doc, handlers);
      }
      undoManager?.destroy();
    },
  };

  /** Creates the Y.Doc and follows the connection (once the libraries are loaded). */
  function follow() {
    newDocument();
    stops.push(channel.onConnectionState((state) => {
      if (state !== "online") {
        joined = false;
        // Others' cursors are out of date while we cannot hear them; the next join
        // brings everyone's state back.
        const others = [...awareness.getStates().keys()].filter((id) => id !== ydoc.clientID);
        awarenessProtocol.removeAwarenessStates(awareness, others, HUB);
      }
      if (state === "revoked") end(`${channel.revokedMessage() || "Your session ended."} Sign in again to keep editing.`);
      refresh();
    }));
  }

  /** Joins for the first time, waiting for a connection as long as it takes. */
  async function firstJoin() {
    let ack = null;
    while (doc === null && !ack?.read_only) {
      await connected();
      ack = await join({ fresh: false });
    }
    return ack;
  }

  function connected() {
    return new Promise((resolve) => {
      const stop = channel.onConnect(() => {
        queueMicrotask(() => stop());
        resolve();
      });
      stops.push(stop);
    });
  }
}

function peersBox() {
  const listeners = new Set();
  let last = [];
  return {
    set(people) {
      last = people;
      for (const fn of listeners) fn(last);
    },
    on(fn) {
      listeners.add(fn);
      fn(last);
      return () => listeners.delete(fn);
    },
  };
}

/** The smallest single replacement that turns `a` into `b`, or null when they are equal. */
export function textChange(a, b) {
  if (a === b) return null;
  let start = 0;
  const short = Math.min(a.length, b.length);
  while (start < short && a.charCodeAt(start) === b.charCodeAt(start)) start++;
  let end = 0;
  while (end < short - start && a.charCodeAt(a.length - 1 - end) === b.charCodeAt(b.length - 1 - end)) end++;
  return { from: start, to: a.length - end, insert: b.slice(start, b.length - end) };
}

/** Where an edit made against `before` goes in `after` (a rebuilt text): at the same
 * place if the text around it did not change, else after the nearest occurrence of the
 * text that preceded it; its deletion only if the deleted text is still there. */
export function place(edit, before, after) {
  if (before === after) return edit;
  const context = before.slice(Math.max(0, edit.from - CONTEXT), edit.from);
  let from = Math.min(edit.from, after.length);
  if (context) {
    const left = after.lastIndexOf(context, edit.from);
    const right = after.indexOf(context, edit.from);
    const candidates = [left, right].filter((i) => i >= 0);
    if (candidates.length) {
      const best = candidates.reduce((x, y) => (Math.abs(x - edit.from) <= Math.abs(y - edit.from) ? x : y));
      from = best + context.length;
    }
  }
  const removed = before.slice(edit.from, edit.to);
  const to = removed && after.slice(from, from + removed.length) === removed ? from + removed.length : from;
  return { from, to, insert: edit.insert };
}
