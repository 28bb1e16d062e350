// Node's `ws` echo server for scripts/bench-ws.sh: `node echo-server.js [deflate]`, with
// NODE_PATH pointing at the node_modules that .ci/run installs. Prints its address on the
// first line. With `deflate` it accepts permessage-deflate at zlib level 6 and compresses
// messages of 64 bytes and more (ws-core's defaults), so both servers do the same work.
'use strict';
const { WebSocketServer } = require('ws');

const deflate = process.argv.includes('deflate');
const server = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 1 << 20,
  perMessageDeflate: deflate ? { threshold: 64, zlibDeflateOptions: { level: 6 } } : false,
});
server.on('listening', () => {
  const { address, port } = server.address();
  console.log(`${address}:${port}`);
});
server.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  socket.on('error', () => {});
});
