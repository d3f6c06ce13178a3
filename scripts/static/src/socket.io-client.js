// The Socket.IO client (the realtime channel's transport) as one ES module.
export { io, Manager } from "socket.io-client";
