// The Socket.IO client (the realtime channel's transport) as one ES module, with the
// msgpack encoding the web app speaks (docs/realtime.md, "Encodings").
export { io, Manager } from "socket.io-client";
export { default as msgpackParser } from "socket.io-msgpack-parser";
