// The gateway bench's host floor: a bare node:http server in a process of its own that answers
// every request with the bytes the gateway answered for the same fetch (status 200, its
// Content-Type and body), and decides, reads and audits nothing. The same generator at the
// same rate against it shows what this host and generator cost a request, so that a gateway
// figure is read beside the floor measured in the same run. `node floor-main.js BODY_FILE`
// listens on a free loopback port, prints it, and runs until killed.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

const file = process.argv[2];
if (file === undefined) throw new Error('usage: floor-main.js BODY_FILE');
const body = readFileSync(file);
const server = createServer({ noDelay: true }, (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
});
server.listen(0, '127.0.0.1', () => console.log(String((server.address() as AddressInfo).port)));
