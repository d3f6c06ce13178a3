// The page's one connection to the hub's realtime channel (docs/realtime.md): a Socket.IO
// socket on the `/documents` namespace of the page's own origin, authenticated by the
// session cookie. Every shared document of the page and the file listing's presence
// share it. socket.io-client reconnects by itself; whoever registered here is told on
// each (re)connect, so that it joins again. It speaks Socket.IO's msgpack encoding (one
// binary frame per message, a keystroke included; docs/realtime.md, "Encodings").
import { io, msgpackParser } from "./vendor/socket.io-client-4.8.4.js";

/** No message carries more binary data than this (the hub's limit; docs/realtime.md). */
export const PART_BYTES = 256 * 1024;
const ACK_TIMEOUT_MS = 30_000;

let socket = null;
let generation = 0; // counts connections: an ack from an earlier one is stale
const documents = new Map(); // doc id → {onUpdate, onAwareness, onPresence, onResync, onClosed}
const early = new Map(); // doc id → updates that arrived before the join ack named the doc
const presence = new Map(); // doc id → the last "who is here" list (it may precede the ack)
const parts = new Map(); // `${doc}/${id}` → slices of an update arriving in parts
const connectListeners = new Set();
const stateListeners = new Set();
const presenceWatchers = new Map(); // project id → Set of fn(message)
let revoked = null;

function channel() {
  if (socket) return socket;
  socket = io("/documents", {
    path: "/socket.io/",
    withCredentials: true,
    parser: msgpackParser,
    // WebSocket first: one round trip less to the first sync than polling-then-upgrade;
    // long-polling still works behind proxies that refuse WebSockets.
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    reconnectionDelay: 300,
    reconnectionDelayMax: 5_000,
  });
  socket.on("connect", () => {
    generation += 1;
    tellState();
    for (const fn of connectListeners) fn();
    for (const projectId of presenceWatchers.keys()) watchOnce(projectId);
  });
  socket.on("disconnect", () => tellState());
  socket.on("connect_error", () => tellState());
  socket.on("update", (message) => deliverUpdate(message));
  socket.on("awareness", (message) => documents.get(message.doc)?.onAwareness(new Uint8Array(message.update)));
  socket.on("presence", (message) => {
    presence.set(message.doc, message.people);
    documents.get(message.doc)?.onPresence(message.people);
    for (const fn of presenceWatchers.get(message.project_id) || []) fn(message);
  });
  socket.on("resync", (message) => documents.get(message.doc)?.onResync(message));
  socket.on("closed", (message) => documents.get(message.doc)?.onClosed(message));
  socket.on("revoked", (message) => {
    revoked = message;
    tellState();
  });
  return socket;
}

function tellState() {
  const state = connectionState();
  for (const fn of stateListeners) fn(state);
}

/** "online", "offline" or "revoked" (the credential ended: sign in again). */
export function connectionState() {
  if (revoked) return "revoked";
  return socket?.connected ? "online" : "offline";
}

export const revokedMessage = () => revoked?.message || "";

/** Calls fn(state) on each change of connectionState(); returns a stop function. */
export function onConnectionState(fn) {
  channel();
  stateListeners.add(fn);
  return () => stateListeners.delete(fn);
}

/** Calls fn() on every connect, and now if connected; returns a stop function. */
export function onConnect(fn) {
  const s = channel();
  connectListeners.add(fn);
  if (s.connected) fn();
  return () => connectListeners.delete(fn);
}

/** Calls fn() on every later connect (not now); returns a stop function. */
export function onReconnect(fn) {
  channel();
  connectListeners.add(fn);
  return () => connectListeners.delete(fn);
}

export const connectionGeneration = () => generation;
export const isConnected = () => Boolean(socket?.connected);

/** The payload as msgpack carries it: typed arrays (Yjs's updates) as ArrayBuffers, which
 * it encodes as binary (a Uint8Array it would send as a map of numbers). */
function onWire(payload) {
  const out = {};
  for (const [key, value] of Object.entries(payload)) {
    out[key] = ArrayBuffer.isView(value)
      ? value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength)
      : value;
  }
  return out;
}

/** Emits `event` with `payload`; resolves to the ack object (an error ack included), or
 * to {ok: false, error: {code: "disconnected"}} when the connection ended first. */
export function request(event, payload) {
  const s = channel();
  const asked = generation;
  return new Promise((resolve) => {
    if (!s.connected) {
      resolve({ ok: false, error: { code: "disconnected", message: "not connected" } });
      return;
    }
    s.timeout(ACK_TIMEOUT_MS).emit(event, onWire(payload), (err, ack) => {
      if (err || asked !== generation || !ack) {
        resolve({ ok: false, error: { code: "disconnected", message: "no answer from the hub" } });
      } else {
        resolve(ack);
      }
    });
  });
}

/** Sends a fire-and-forget message (awareness), only while connected. */
export function send(event, payload) {
  if (socket?.connected) socket.emit(event, onWire(payload));
}

/** Sends one update, cut into parts when it is larger than PART_BYTES; resolves to the
 * ack of its last part. */
export async function sendUpdate(doc, epoch, update) {
  if (update.length <= PART_BYTES) return request("update", { doc, epoch, update });
  const count = Math.ceil(update.length / PART_BYTES);
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  // All parts are emitted at once, in order: nothing of this document comes between them.
  const acks = [];
  for (let index = 0; index < count; index++) {
    const slice = update.subarray(index * PART_BYTES, (index + 1) * PART_BYTES);
    acks.push(request("update", { doc, epoch, update: slice, part: { id, index, count } }));
  }
  const answers = await Promise.all(acks);
  return answers.find((ack) => !ack.ok) || answers[answers.length - 1];
}

/** Registers the handlers of a joined document; returns the updates that came for it
 * before the join ack (the first sync in parts, say). */
export function register(doc, handlers) {
  documents.set(doc, handlers);
  if (presence.has(doc)) handlers.onPresence(presence.get(doc));
  const before = early.get(doc) || [];
  early.delete(doc);
  return before;
}

export function unregister(doc, handlers) {
  if (documents.get(doc) === handlers) {
    documents.delete(doc);
    presence.delete(doc);
  }
}

function deliverUpdate(message) {
  let update = new Uint8Array(message.update);
  if (message.part) {
    const key = `${message.doc}/${message.part.id}`;
    const slices = parts.get(key) || [];
    slices[message.part.index] = update;
    parts.set(key, slices);
    if (slices.filter(Boolean).length < message.part.count) return;
    parts.delete(key);
    update = concat(slices);
  }
  const whole = { epoch: message.epoch, update, seq: message.seq };
  const handlers = documents.get(message.doc);
  if (handlers) handlers.onUpdate(whole);
  else early.set(message.doc, [...(early.get(message.doc) || []), whole]);
}

function concat(slices) {
  const out = new Uint8Array(slices.reduce((n, s) => n + s.length, 0));
  let at = 0;
  for (const s of slices) {
    out.set(s, at);
    at += s.length;
  }
  return out;
}

/** Follows who has which file of a project open: fn(files) now with {path: [person]},
 * fn(files) again after each change. Returns a stop function. */
export function watchPresence(projectId, fn) {
  channel();
  const files = {};
  const watcher = (message) => {
    if (message.path === undefined) { // a fresh `watch` answer: the whole picture
      for (const key of Object.keys(files)) delete files[key];
      Object.assign(files, message.files);
    } else if (message.people.length) {
      files[message.path] = message.people;
    } else {
      delete files[message.path];
    }
    fn({ ...files });
  };
  if (!presenceWatchers.has(projectId)) presenceWatchers.set(projectId, new Set());
  presenceWatchers.get(projectId).add(watcher);
  if (socket.connected) watchOnce(projectId);
  return () => {
    const watchers = presenceWatchers.get(projectId);
    watchers?.delete(watcher);
    if (watchers && !watchers.size) {
      presenceWatchers.delete(projectId);
      send("unwatch", { project_id: projectId });
    }
  };
}

async function watchOnce(projectId) {
  const ack = await request("watch", { project_id: projectId });
  if (!ack.ok) return; // presence is a nicety: the listing works without it
  for (const fn of presenceWatchers.get(projectId) || []) fn({ files: ack.files || {} });
}
