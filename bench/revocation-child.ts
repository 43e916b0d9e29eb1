/**
 * The processes around the revocation benchmark's client proxy (bench/revocation.ts), so that
 * the proxy under test has its descriptors to itself (each session costs it two, and the
 * limit on this machine is 20,000 a process):
 *
 * - `peers FIRST COUNT CLIENT_KEY CLIENT_MESH_PORT`: COUNT responder proxies on 127.0.1.FIRST...,
 *   each knowing itself and the client, in front of one target application that holds every
 *   connection open; prints one JSON line `{peers: [{agentId, publicKeyB64, address,
 *   meshPort}], appPort}`, then runs until stdin closes;
 * - `apps`: the applications: reads `open GROUP COUNT PORT` and `close GROUP` lines on stdin,
 *   opens (or destroys) that many connections to PORT, answers `opened GROUP` / `closed GROUP`.
 */
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { decodeKey, encodeKey, nativeBackend } from '../src/noise/index.js';
import { Proxy, silentLogger, type MeshPeer, type PeerDirectory } from '../src/proxy/index.js';

class StaticDirectory implements PeerDirectory {
  readonly #byKey = new Map<string, MeshPeer>();
  add(peer: MeshPeer): void {
    this.#byKey.set(peer.publicKeyB64, peer);
  }
  peerByKey(key: string): MeshPeer | undefined {
    return this.#byKey.get(key);
  }
  resolveAddress(): { kind: 'none' } {
    return { kind: 'none' };
  }
  peersByAgentId(agentId: string): MeshPeer[] {
    return [...this.#byKey.values()].filter((p) => p.agentId === agentId);
  }
}

async function peers(first: number, count: number, clientKey: string, clientMeshPort: number): Promise<void> {
  const held = new Set<Socket>();
  const app = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    held.add(s);
    s.once('close', () => held.delete(s));
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const client: MeshPeer = { agentId: 'bench/client', publicKey: decodeKey(clientKey, 32), publicKeyB64: clientKey, generation: 1n, addresses: ['127.0.0.1'], meshPort: clientMeshPort };
  const out: { agentId: string; publicKeyB64: string; address: string; meshPort: number }[] = [];
  const proxies: Proxy[] = [];
  for (let i = first; i < first + count; i++) {
    const keyPair = nativeBackend.dh('25519').generateKeyPair();
    const id = { agentId: `bench/p${i}`, keyPair, publicKeyB64: encodeKey(keyPair.publicKey) };
    const address = `127.0.1.${i + 1}`;
    const directory = new StaticDirectory();
    directory.add(client);
    const appPort = (app.address() as { port: number }).port;
    let proxy: Proxy;
    let meshPort: number;
    // A mesh port on 127.0.1.x may get the number the target has on 127.0.0.1; the proxy's
    // own ports are never a target (status 4), so draw again.
    do {
      proxy = new Proxy({
        trustDomain: 'cluster.local',
        backend: nativeBackend,
        log: silentLogger(),
        identity: id,
        directory,
        outbound: { mode: 'strict', explicit: [] },
        inbound: { mesh: { host: address, port: 0 }, targetHost: '127.0.0.1' },
      });
      meshPort = (await proxy.start()).mesh;
      if (meshPort === appPort) await proxy.shutdown(0);
    } while (meshPort === appPort);
    directory.add({ agentId: id.agentId, publicKey: keyPair.publicKey, publicKeyB64: id.publicKeyB64, generation: 1n, addresses: [address], meshPort });
    proxies.push(proxy);
    out.push({ agentId: id.agentId, publicKeyB64: id.publicKeyB64, address, meshPort });
  }
  console.log(JSON.stringify({ peers: out, appPort: (app.address() as { port: number }).port }));
  process.stdin.resume();
  process.stdin.once('end', () => {
    void Promise.all(proxies.map((p) => p.shutdown(0))).then(() => {
      for (const s of held) s.destroy();
      app.close();
    });
  });
}

function apps(): void {
  const groups = new Map<string, Socket[]>();
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const [verb, group, count, port] = line.split(' ');
    if (verb === 'close') {
      for (const s of groups.get(group!) ?? []) s.destroy();
      groups.delete(group!);
      console.log(`closed ${group}`);
      return;
    }
    const list = groups.get(group!) ?? [];
    groups.set(group!, list);
    let pending = Number(count);
    let inFlight = 0;
    let started = 0;
    // 20 connects at a time: the client proxy's accept queue and handshakes keep up.
    const next = (): void => {
      while (inFlight < 20 && started < Number(count)) {
        started++;
        inFlight++;
        const s = connect({ host: '127.0.0.1', port: Number(port), allowHalfOpen: true }, () => {
          inFlight--;
          if (--pending === 0) console.log(`opened ${group}`);
          else next();
        });
        s.on('error', () => {});
        list.push(s);
      }
    };
    next();
  });
  lines.once('close', () => {
    for (const list of groups.values()) for (const s of list) s.destroy();
  });
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'peers') await peers(Number(rest[0]), Number(rest[1]), rest[2]!, Number(rest[3]));
else if (mode === 'apps') apps();
else throw new Error('usage: revocation-child.js peers FIRST COUNT CLIENT_KEY CLIENT_MESH_PORT | apps');
