// Yjs and what binds it to the editor and the wire, as one ES module: the shared
// document (yjs), its binding to CodeMirror (y-codemirror.next: sync, remote cursors,
// per-user undo), the sync and awareness protocols (y-protocols) and the binary
// encoding they use (lib0). Built with the CodeMirror bundle (esbuild splitting), so
// y-codemirror.next uses the very @codemirror/state and @codemirror/view objects the
// editor does: a second copy would make its extensions fail ("Unrecognized extension").
export * as Y from "yjs";
export { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
export * as syncProtocol from "y-protocols/sync";
export * as awarenessProtocol from "y-protocols/awareness";
export * as encoding from "lib0/encoding";
export * as decoding from "lib0/decoding";
