// node_http.js -- the node `net' responder for the HTTP keep-alive figure.
//
// Benchmark code, not part of the library.  Same answers as every other
// responder in bench/: each request (everything up to "\r\n\r\n", which may
// be split across reads or pipelined) gets a fixed 200 with a 13-byte body;
// the answers for one read leave in one write.
// Usage: node node_http.js PORT (0 = any); prints "READY <port>".
'use strict';
const net = require('net');

const RESPONSE = Buffer.from(
  'HTTP/1.1 200 OK\r\n' +
  'Content-Type: text/plain\r\n' +
  'Content-Length: 13\r\n' +
  '\r\n' +
  'Hello, World!', 'latin1');
const TERM = [13, 10, 13, 10];

const server = net.createServer({ noDelay: true }, (sock) => {
  let state = 0; // terminator bytes matched at the end of the last chunk
  sock.on('data', (buf) => {
    let n = 0;
    let i = 0;
    const len = buf.length;
    while (i < len) {
      if (state === 0) {
        const p = buf.indexOf(13, i);
        if (p < 0) break;
        i = p + 1;
        state = 1;
        continue;
      }
      if (buf[i] === TERM[state]) {
        state++;
        i++;
        if (state === 4) { n++; state = 0; }
      } else {
        state = buf[i] === 13 ? 1 : 0;
        i++;
      }
    }
    if (n === 1) sock.write(RESPONSE);
    else if (n > 1) {
      const out = Buffer.allocUnsafe(n * RESPONSE.length);
      for (let k = 0; k < n; k++) RESPONSE.copy(out, k * RESPONSE.length);
      sock.write(out);
    }
  });
  sock.on('error', () => sock.destroy());
});

server.listen({ host: '127.0.0.1', port: Number(process.argv[2] || 0),
                backlog: 4096 }, () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
