// The session layer on its own: the Rekey schedule at the real 65536-message interval, in
// both directions. The application side is an in-memory Duplex so that every chunk becomes
// exactly one transport message (a TCP socket would coalesce small writes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { HandshakeState, nativeBackend, type Transport } from '../src/noise/index.js';
import { FrameDecoder, PROTOCOL, frameHeader } from '../src/proxy/index.js';
import { SecureSession } from '../src/proxy/session/secure-session.js';
import { dial, tcpServer } from './helpers/mesh.js';

const MESSAGES = 70_000; // past the first Rekey at 65536

function transports(): { session: Transport; peer: Transport } {
  const dh = nativeBackend.dh('25519');
  const i = dh.generateKeyPair();
  const r = dh.generateKeyPair();
  const initiator = new HandshakeState({ protocol: PROTOCOL.protocolName, initiator: true, staticKeyPair: i, remoteStaticKey: r.publicKey });
  const responder = new HandshakeState({ protocol: PROTOCOL.protocolName, initiator: false, staticKeyPair: r });
  responder.readMessage(initiator.writeMessage().message);
  const m2 = responder.writeMessage();
  return { session: initiator.readMessage(m2.message).transport!, peer: m2.transport! };
}

/** The peer's side of the schedule, written independently of SecureSession. */
function rekeyingPeer(t: Transport) {
  let sent = 0;
  let received = 0;
  return {
    seal(plaintext: Uint8Array): Uint8Array {
      const ct = t.encrypt(plaintext);
      if (++sent % PROTOCOL.rekeyInterval === 0) t.sending!.rekey();
      return ct;
    },
    open(ciphertext: Uint8Array): Uint8Array {
      const pt = t.decrypt(ciphertext);
      if (++received % PROTOCOL.rekeyInterval === 0) t.receiving!.rekey();
      return pt;
    },
  };
}

class OneByteApp extends Duplex {
  private pushed = 0;
  readonly received: Buffer[] = [];
  constructor(private readonly toSend: number) {
    super({ allowHalfOpen: true });
  }
  override _read(): void {
    if (this.pushed === this.toSend) {
      this.push(null);
      return;
    }
    this.push(Buffer.of(this.pushed++ & 0xff));
  }
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.received.push(chunk);
    done();
  }
}

test(`Rekey after every ${PROTOCOL.rekeyInterval} messages, sender and receiver alike`, async () => {
  const peerSocket = new Promise<Socket>((resolve) => {
    void tcpServer(resolve).then((server) => (serverPort = server));
  });
  let serverPort: Awaited<ReturnType<typeof tcpServer>> | undefined;
  while (serverPort === undefined) await new Promise((r) => setImmediate(r));
  const mesh = await dial(serverPort.port);
  const peer = await peerSocket;
  const { session: sessionTransport, peer: peerTransport } = transports();
  const app = new OneByteApp(MESSAGES);
  const session = new SecureSession(app as unknown as Socket, mesh, sessionTransport, new FrameDecoder(), 'outbound', { agentId: 't/peer', publicKeyB64: 'k' }, 1);
  const ended = new Promise((resolve) => session.onEnd(resolve));
  session.start();

  // Peer -> session: MESSAGES one-byte messages and END-OF-STREAM, in one burst.
  const crypto = rekeyingPeer(peerTransport);
  const frames: Buffer[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const ct = crypto.seal(Buffer.of((i * 7) & 0xff));
    frames.push(frameHeader(ct.length), Buffer.from(ct));
  }
  const eos = crypto.seal(new Uint8Array(0));
  frames.push(frameHeader(eos.length), Buffer.from(eos));
  peer.write(Buffer.concat(frames));
  peer.end();

  // Session -> peer: every one-byte chunk of the app became one message.
  const decoder = new FrameDecoder();
  let messages = 0;
  let eosSeen = false;
  const plain: number[] = [];
  await new Promise<void>((resolve, reject) => {
    peer.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (m) => {
          const pt = crypto.open(m);
          messages++;
          if (pt.length === 0) eosSeen = true;
          else plain.push(...pt);
        });
      } catch (err) {
        reject(err);
      }
    });
    peer.on('end', () => resolve());
  });
  const end = (await ended) as { result: string };
  assert.equal(end.result, 'closed');
  assert.equal(eosSeen, true);
  assert.equal(messages, MESSAGES + 1);
  assert.equal(plain.length, MESSAGES);
  assert.ok(plain.every((b, i) => b === (i & 0xff)), 'session -> peer bytes in order');
  const toApp = Buffer.concat(app.received);
  assert.equal(toApp.length, MESSAGES);
  assert.ok(toApp.every((b, i) => b === ((i * 7) & 0xff)), 'peer -> session bytes in order');
  await serverPort.close();
});
