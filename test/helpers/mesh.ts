/**
 * In-process meshes for loopback tests: proxies built from the real Proxy class, a registry
 * view the test controls, and a raw NMP/1 initiator for driving a responder byte by byte.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import {
  HandshakeState,
  encodeKey,
  nativeBackend,
  parseProtocolName,
  type KeyPair,
  type Transport,
} from '../../src/noise/index.js';
import {
  Proxy,
  PROTOCOL,
  FrameDecoder,
  decodeP2,
  encodeFrame,
  encodeP1,
  prologue,
  silentLogger,
  type Identity,
  type Logger,
  type AddressLookup,
  type KeepaliveSettings,
  type MeshPeer,
  type PeerDirectory,
  type TimestampClock,
  type ConnectionCaps,
} from '../../src/proxy/index.js';

export const TRUST_DOMAIN = 'cluster.local';

export class TestDirectory implements PeerDirectory {
  readonly peers = new Map<string, MeshPeer>();
  set(peer: MeshPeer): void {
    this.peers.set(peer.publicKeyB64, peer);
  }
  delete(publicKeyB64: string): void {
    this.peers.delete(publicKeyB64);
  }
  peerByKey(key: string): MeshPeer | undefined {
    return this.peers.get(key);
  }
  /** Addresses that belong to a meshed peer that may not be used (revoked, conflicting). */
  readonly refused = new Map<string, string>();
  refuseAddress(address: string, reason: string): void {
    this.refused.set(address, reason);
  }
  resolveAddress(address: string): AddressLookup {
    const reason = this.refused.get(address);
    if (reason !== undefined) return { kind: 'refuse', reason };
    for (const peer of this.peers.values()) if (peer.addresses.includes(address)) return { kind: 'peer', peer };
    return { kind: 'none' };
  }
  peersByAgentId(agentId: string): MeshPeer[] {
    return [...this.peers.values()].filter((p) => p.agentId === agentId);
  }
}

export function makeIdentity(agentId: string): Identity {
  const keyPair = nativeBackend.dh('25519').generateKeyPair();
  return { agentId, keyPair, publicKeyB64: encodeKey(keyPair.publicKey) };
}

export function peerOf(identity: Identity, meshPort: number, generation = 1n, addresses = ['127.0.0.1']): MeshPeer {
  return {
    agentId: identity.agentId,
    publicKey: identity.keyPair.publicKey,
    publicKeyB64: identity.publicKeyB64,
    generation,
    addresses,
    meshPort,
  };
}

export interface TwoProxies {
  readonly client: Proxy;
  readonly server: Proxy;
  readonly clientId: Identity;
  readonly serverId: Identity;
  /** What the client proxy believes. */
  readonly clientView: TestDirectory;
  /** What the server proxy believes. */
  readonly serverView: TestDirectory;
  /** The client proxy's explicit listener, routed to the server's target port. */
  readonly entryPort: number;
  readonly serverMeshPort: number;
  close(): Promise<void>;
}

export interface TwoProxyOptions {
  /** Puts something between the proxies: given B's mesh port, returns the port A dials. */
  readonly via?: (serverMeshPort: number) => Promise<number>;
  readonly handshakeTimeoutMs?: number;
  /** The client proxy's P1 timestamp source, to step its wall clock. */
  readonly clientClock?: TimestampClock;
  readonly keepalive?: KeepaliveSettings;
  /** Connection caps of each proxy (absent: LIMITS' ceilings). */
  readonly caps?: { readonly client?: ConnectionCaps; readonly server?: ConnectionCaps };
  /** The server proxy's logger (absent: silent). */
  readonly serverLog?: Logger;
}

/**
 * Proxy A (client side) with an explicit listener to the server agent's `targetPort`, and
 * proxy B (server side) whose responder forwards to `targetPort` on the address the mesh
 * connection arrived on, 127.0.0.1 (the default, as in a pod). Each proxy has
 * its own registry view; both start out knowing both peers at generation 1.
 */
export async function twoProxies(targetPort: number, options: TwoProxyOptions = {}): Promise<TwoProxies> {
  const clientId = makeIdentity('demo/client');
  const serverId = makeIdentity('demo/server');
  const clientView = new TestDirectory();
  const serverView = new TestDirectory();
  const common = {
    trustDomain: TRUST_DOMAIN,
    backend: nativeBackend,
    log: silentLogger(),
    ...(options.handshakeTimeoutMs !== undefined && { handshakeTimeoutMs: options.handshakeTimeoutMs }),
    ...(options.keepalive && { keepalive: options.keepalive }),
  };
  const server = new Proxy({
    ...common,
    identity: serverId,
    directory: serverView,
    ...(options.serverLog && { log: options.serverLog }),
    outbound: { mode: 'permissive', explicit: [] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 } },
    ...(options.caps?.server && { caps: options.caps.server }),
  });
  const serverMeshPort = (await server.start()).mesh;
  const dialPort = options.via ? await options.via(serverMeshPort) : serverMeshPort;
  const client = new Proxy({
    ...common,
    identity: clientId,
    directory: clientView,
    ...(options.clientClock && { timestampClock: options.clientClock }),
    outbound: { mode: 'permissive', explicit: [{ listen: { host: '127.0.0.1', port: 0 }, peer: serverId.agentId, port: targetPort }] },
    inbound: { mesh: { host: '127.0.0.1', port: 0 } },
    ...(options.caps?.client && { caps: options.caps.client }),
  });
  const clientPorts = await client.start();
  for (const view of [clientView, serverView]) {
    view.set(peerOf(clientId, clientPorts.mesh));
    view.set(peerOf(serverId, view === clientView ? dialPort : serverMeshPort));
  }
  return {
    client,
    server,
    clientId,
    serverId,
    clientView,
    serverView,
    entryPort: clientPorts.explicit[0]!,
    serverMeshPort,
    async close() {
      await Promise.all([client.shutdown(0), server.shutdown(0)]);
    },
  };
}

/** A TCP server on a free loopback port; `close()` also destroys open connections. */
export async function tcpServer(onConnection: (socket: Socket) => void): Promise<{ port: number; server: Server; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    // Resets are expected in these tests; the assertions read them from readAll().
    socket.on('error', () => {});
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** How a connection ended, as the application sees it. */
export type Ending = 'end' | 'reset' | 'closed';

/** Reads everything until the socket ends; `ending` says whether it was a FIN or a reset. */
export function readAll(socket: Socket, timeoutMs = 20_000): Promise<{ data: Buffer; ending: Ending }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let ending: Ending | null = null;
    const timer = setTimeout(() => reject(new Error(`no end of stream within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      ending ??= 'end';
      // allowHalfOpen sockets stay open after the peer's FIN until we end our side too.
      socket.end();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      ending ??= err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : 'closed';
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), ending: ending ?? 'closed' });
    });
  });
}

/** A raw NMP/1 initiator under the test's full control, for driving a responder. */
export interface RawHandshake {
  readonly status: number | null;
  readonly generation: bigint | null;
  readonly transport: Transport | null;
  readonly socket: Socket;
  /** True if the responder closed without sending a single byte. */
  readonly silent: boolean;
}

export interface RawOptions {
  readonly port: number;
  readonly identity: Identity;
  readonly responderKey: Uint8Array;
  readonly timestampNs?: bigint;
  readonly generation?: bigint;
  readonly targetPort: number;
  readonly trustDomain?: string;
  /** Rewrites the bytes before they are sent: the test plays the attacker. */
  readonly mangle?: (wire: Buffer) => Buffer;
  readonly rawP1?: Uint8Array;
  /**
   * Makes message 1 reproducible byte for byte (same ephemeral, same P1): a replay that the
   * test can still read the answer to, which an attacker replaying bytes could not.
   */
  readonly ephemeral?: KeyPair;
}

export async function rawHandshake(o: RawOptions): Promise<RawHandshake> {
  const socket = await dial(o.port);
  const handshake = new HandshakeState({
    protocol: parseProtocolName(PROTOCOL.protocolName),
    initiator: true,
    staticKeyPair: o.identity.keyPair,
    remoteStaticKey: o.responderKey,
    prologue: prologue(o.trustDomain ?? TRUST_DOMAIN),
    ...(o.ephemeral && { DANGEROUS_fixedEphemeralForTestVectors: o.ephemeral }),
  });
  const p1 = o.rawP1 ?? encodeP1({
    timestampNs: o.timestampNs ?? BigInt(Date.now()) * 1_000_000n,
    generation: o.generation ?? 1n,
    targetPort: o.targetPort,
    extensions: [],
  });
  let wire: Buffer = Buffer.concat([PROTOCOL.preamble, encodeFrame(handshake.writeMessage(p1).message)]);
  if (o.mangle) wire = o.mangle(wire);
  socket.write(wire);
  const received: Buffer[] = [];
  const decoder = new FrameDecoder();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('responder neither answered nor closed')), 20_000);
    let done = false;
    const finish = (r: RawHandshake): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeAllListeners('data');
      resolve(r);
    };
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      decoder.push(chunk, (message) => {
        const { payload, transport } = handshake.readMessage(message);
        const p2 = decodeP2(payload);
        finish({ status: p2?.status ?? null, generation: p2?.generation ?? null, transport, socket, silent: false });
        return false;
      });
    });
    const closed = (): void => finish({ status: null, generation: null, transport: null, socket, silent: received.length === 0 });
    socket.on('end', closed);
    socket.on('close', closed);
  });
}
