// Transparent capture for real: `noisemesh init-iptables` in network namespaces, connections
// redirected by the kernel, original destinations read back through the native addon.
// Pod A: outbound capture (its capture listener runs as the proxy UID and forwards to the
// original destination). Pod B: the servers A dials, then inbound capture.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import {
  addonOriginalDestinationLookup,
  AddonUnavailableError,
  CaptureError,
  loadOriginalDestinationAddon,
  NoDescriptorError,
  NotRedirectedError,
  originalDestination,
  withOriginalDestination,
  type SocketAddress,
} from '../src/proxy/capture/index.js';
import { PodNetwork, requireTools, waitForLine, type Pod } from './helpers/netns.js';
import { repoRoot } from './helpers/paths.js';

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const CAPTURE_MODULE = pathToFileURL(join(repoRoot, 'dist', 'src', 'proxy', 'capture', 'index.js')).href;
const IPTABLES_MODULE = pathToFileURL(join(repoRoot, 'dist', 'src', 'proxy', 'iptables', 'index.js')).href;
const PROXY_UID = 1337;
const APP_UID = 1000;

/** Answers every connection with `real <port> from <client address>` and closes. */
const REAL_SERVER = `
import net from 'node:net';
const ports = process.argv.slice(1).map(Number);
const unmapped = (a) => a.startsWith('::ffff:') ? a.slice(7) : a;
await Promise.all(ports.map((port) => new Promise((resolve, reject) => {
  const server = net.createServer((s) => { s.on('error', () => {}); s.end('real ' + port + ' from ' + unmapped(s.remoteAddress) + '\\n'); });
  server.once('error', reject);
  server.listen({ host: '::', port, ipv6Only: false }, resolve);
})));
console.log('listening');
`;

/**
 * A capture listener as the proxy has one: the decorator from src/proxy/capture attaches the
 * original destination, which is written back to the client as `captured <address> <port>
 * <family>`. With 'forward' it then connects there, as the proxy does, and relays the answer.
 */
const CAPTURE_SERVER = `
import net from 'node:net';
const [moduleUrl, port, mode] = process.argv.slice(1);
const capture = await import(moduleUrl);
const lookup = capture.addonOriginalDestinationLookup();
const onConnection = capture.withOriginalDestination(lookup, (socket, dst) => {
  socket.on('error', () => {});
  socket.write('captured ' + dst.address + ' ' + dst.port + ' ' + dst.family + '\\n');
  if (mode !== 'forward') return void socket.end();
  const upstream = net.connect({ host: dst.address, port: dst.port });
  upstream.on('error', (err) => socket.end('upstream ' + err.code + '\\n'));
  upstream.pipe(socket);
}, (socket, err) => console.log('refused ' + err.code));
const server = net.createServer(onConnection);
server.listen({ host: '::', port: Number(port), ipv6Only: false }, () => console.log('listening'));
`;

/** Prints everything the server sends until it closes; `error <code>` if the connection fails. */
const CLIENT = `
import net from 'node:net';
const [host, port] = process.argv.slice(1);
let text = '';
const socket = net.connect({ host, port: Number(port) });
socket.setEncoding('utf8');
socket.setTimeout(10000, () => { process.stdout.write(text + 'timeout\\n'); process.exit(1); });
socket.on('data', (d) => (text += d));
socket.on('end', () => { process.stdout.write(text); process.exit(0); });
socket.on('error', (err) => { process.stdout.write(text + 'error ' + err.code + '\\n'); process.exit(1); });
`;

let net: PodNetwork;
let a: Pod;
let b: Pod;

function node(pod: Pod, script: string, args: readonly string[], uid?: number): ChildProcess {
  return net.spawn(pod, process.execPath, ['--input-type=module', '-e', script, ...args], uid === undefined ? {} : { uid });
}

/** What a client in `pod` running as `uid` receives from host:port. */
async function dial(pod: Pod, uid: number, host: string, port: number): Promise<string> {
  const result = await net.exec(pod, process.execPath, ['--input-type=module', '-e', CLIENT, host, String(port)], { uid });
  return result.stdout + result.stderr;
}

async function initIptables(pod: Pod, flags: readonly string[]): Promise<void> {
  const result = await net.exec(pod, process.execPath, [CLI, 'init-iptables', ...flags]);
  assert.equal(result.code, 0, `init-iptables ${flags.join(' ')} in pod ${pod.name}: ${result.stdout}${result.stderr}`);
}

/** The `-A` lines of our chains and of the jumps into them, as iptables-save prints them. */
async function installedRules(pod: Pod, save: 'iptables-save' | 'ip6tables-save'): Promise<string[]> {
  const result = await net.exec(pod, save, ['-t', 'nat']);
  assert.equal(result.code, 0, `${save}: ${result.stderr}`);
  return result.stdout.split('\n').filter((line) => line.startsWith('-A ') && line.includes('NOISEMESH_')).sort();
}

/** The `-A` lines init-iptables --dry-run renders for these flags, per family. */
async function renderedRules(flags: readonly string[]): Promise<Record<'4' | '6', string[]>> {
  const result = await net.exec(a, process.execPath, [CLI, 'init-iptables', '--dry-run', '--ipv6', ...flags]);
  assert.equal(result.code, 0, result.stderr);
  const [v4 = '', v6 = ''] = result.stdout.split('# IPv6');
  const lines = (text: string) => text.split('\n').filter((l) => l.startsWith('-A ')).sort();
  return { 4: lines(v4), 6: lines(v6) };
}

before(async () => {
  requireTools(['ip', 'setpriv', 'iptables-save', 'iptables-restore', 'ip6tables-save', 'ip6tables-restore']);
  loadOriginalDestinationAddon(); // fails here, with the fix, when the addon was never built
  net = await PodNetwork.create(2);
  [a, b] = net.pods as [Pod, Pod];
  await waitForLine(node(b, REAL_SERVER, ['8080', '9090', '9091', '15443', '15020']), /^listening$/);
  await waitForLine(node(a, REAL_SERVER, ['7070']), /^listening$/);
});

after(async () => {
  await net?.destroy();
});

describe('outbound capture (pod A)', () => {
  const flags = ['--ipv6', '--exclude-outbound-ports', '9090'];
  let capture: ChildProcess;

  before(async () => {
    await initIptables(a, flags);
    capture = node(a, CAPTURE_SERVER, [CAPTURE_MODULE, '15001', 'forward'], PROXY_UID);
    await waitForLine(capture, /^listening$/);
  });

  test('an IPv4 connection is captured with its original destination, and the proxy UID reaches it', async () => {
    assert.equal(await dial(a, APP_UID, b.ipv4, 8080), `captured ${b.ipv4} 8080 4\nreal 8080 from ${a.ipv4}\n`);
  });

  test('an IPv6 connection is captured with its original destination', async () => {
    assert.equal(await dial(a, APP_UID, b.ipv6, 8080), `captured ${b.ipv6} 8080 6\nreal 8080 from ${a.ipv6}\n`);
  });

  test('a connection made by the proxy UID is not captured', async () => {
    assert.equal(await dial(a, PROXY_UID, b.ipv4, 8080), `real 8080 from ${a.ipv4}\n`);
    assert.equal(await dial(a, PROXY_UID, b.ipv6, 8080), `real 8080 from ${a.ipv6}\n`);
  });

  test('an excluded outbound port is not captured', async () => {
    assert.equal(await dial(a, APP_UID, b.ipv4, 9090), `real 9090 from ${a.ipv4}\n`);
    assert.equal(await dial(a, APP_UID, b.ipv6, 9090), `real 9090 from ${a.ipv6}\n`);
  });

  test('loopback and the pod calling its own IP are not captured', async () => {
    assert.equal(await dial(a, APP_UID, '127.0.0.1', 7070), 'real 7070 from 127.0.0.1\n');
    assert.equal(await dial(a, APP_UID, '::1', 7070), 'real 7070 from ::1\n');
    assert.equal(await dial(a, APP_UID, a.ipv4, 7070), `real 7070 from ${a.ipv4}\n`);
    assert.equal(await dial(a, APP_UID, a.ipv6, 7070), `real 7070 from ${a.ipv6}\n`);
  });

  test('a connection made to the capture port itself is refused, not forwarded to itself', async () => {
    const refused = waitForLine(capture, /^refused /);
    await dial(a, PROXY_UID, '127.0.0.1', 15001);
    assert.equal(await refused, 'refused CAPTURE_NOT_REDIRECTED');
    const refused6 = waitForLine(capture, /^refused /);
    await dial(a, PROXY_UID, a.ipv6, 15001);
    assert.equal(await refused6, 'refused CAPTURE_NOT_REDIRECTED');
  });

  test('installing twice leaves exactly the rendered rules, one copy each', async () => {
    await initIptables(a, flags);
    const rendered = await renderedRules(flags);
    assert.ok(rendered[4].length >= 10, `rendered IPv4 rules: ${rendered[4].join('\n')}`);
    assert.deepEqual(await installedRules(a, 'iptables-save'), rendered[4]);
    assert.deepEqual(await installedRules(a, 'ip6tables-save'), rendered[6]);
  });

  test('reinstalling without inbound capture removes the inbound chains and jump', async () => {
    const outboundOnly = [...flags, '--no-inbound'];
    await initIptables(a, outboundOnly);
    const rendered = await renderedRules(outboundOnly);
    const installed = await installedRules(a, 'iptables-save');
    assert.deepEqual(installed, rendered[4]);
    assert.ok(!installed.some((l) => l.includes('INBOUND') || l.includes('IN_REDIRECT') || l.startsWith('-A PREROUTING')));
    assert.deepEqual(await installedRules(a, 'ip6tables-save'), rendered[6]);
    assert.equal(await dial(a, APP_UID, b.ipv4, 8080), `captured ${b.ipv4} 8080 4\nreal 8080 from ${a.ipv4}\n`);
  });

  test('--cleanup removes every noisemesh chain and jump, and capture stops', async () => {
    await initIptables(a, flags);
    await initIptables(a, ['--cleanup', '--ipv6']);
    for (const save of ['iptables-save', 'ip6tables-save']) {
      const result = await net.exec(a, save, ['-t', 'nat']);
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stdout, /NOISEMESH/, `${save} after cleanup:\n${result.stdout}`);
    }
    assert.equal(await dial(a, APP_UID, b.ipv4, 8080), `real 8080 from ${a.ipv4}\n`);
    assert.equal(await dial(a, APP_UID, b.ipv6, 8080), `real 8080 from ${a.ipv6}\n`);
    // Cleaning up what is already clean is no error either.
    await initIptables(a, ['--cleanup', '--ipv6']);
  });
});

describe('inbound capture (pod B)', () => {
  before(async () => {
    await initIptables(b, ['--ipv6', '--exclude-inbound-ports', '15020,9091']);
    await waitForLine(node(b, CAPTURE_SERVER, [CAPTURE_MODULE, '15006', 'report'], PROXY_UID), /^listening$/);
  });

  // The clients run as the proxy UID so that pod A's own rules, whatever state the tests
  // above left them in, cannot capture them on the way out.
  test('plaintext to an app port is redirected to the inbound capture port, which sees B:8080', async () => {
    assert.equal(await dial(a, PROXY_UID, b.ipv4, 8080), `captured ${b.ipv4} 8080 4\n`);
    assert.equal(await dial(a, PROXY_UID, b.ipv6, 8080), `captured ${b.ipv6} 8080 6\n`);
  });

  test('the mesh port and excluded inbound ports are not redirected', async () => {
    for (const port of [15443, 15020, 9091]) {
      assert.equal(await dial(a, PROXY_UID, b.ipv4, port), `real ${port} from ${a.ipv4}\n`);
      assert.equal(await dial(a, PROXY_UID, b.ipv6, port), `real ${port} from ${a.ipv6}\n`);
    }
  });
});

describe('init-iptables failures', () => {
  test('a restore input iptables refuses is reported with the refused line', async () => {
    const script = `
      const { restoreNatTable, IPTABLES_TOOLS } = await import(process.argv[1]);
      try {
        await restoreNatTable(IPTABLES_TOOLS[4], '*nat\\n-A NOISEMESH_PROBE -j RETURN\\nCOMMIT\\n');
        console.log('accepted');
      } catch (err) {
        console.log(JSON.stringify({ code: err.code, failedLine: err.failedLine, message: err.message }));
      }`;
    const result = await net.exec(a, process.execPath, ['--input-type=module', '-e', script, IPTABLES_MODULE]);
    const report = JSON.parse(result.stdout) as { code: string; failedLine: string; message: string };
    assert.equal(report.code, 'IPTABLES_COMMAND_FAILED');
    assert.equal(report.failedLine, '-A NOISEMESH_PROBE -j RETURN');
    assert.match(report.message, /^iptables-restore failed \(exit 1\): .*line 2 failed.*the refused line: -A NOISEMESH_PROBE -j RETURN/s);
    const save = await net.exec(a, 'iptables-save', ['-t', 'nat']);
    assert.doesNotMatch(save.stdout, /NOISEMESH_PROBE/, 'a refused input must change nothing');
  });

  test('init-iptables without the rights to change rules fails with the cause', async () => {
    const result = await net.exec(a, process.execPath, [CLI, 'init-iptables', '--no-ipv6'], { uid: APP_UID });
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stderr, /^noisemesh init-iptables: iptables-save failed \(exit \d+\): /);
    assert.match(result.stderr, /run as root or give the init container NET_ADMIN/);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'a diagnosis, not a stack trace');
    assert.match(result.stderr, /Permission denied|Operation not permitted|must be root/i);
  });
});

describe('original destination lookup without iptables', () => {
  let server: Server;
  let port: number;
  let accepted: (socket: Socket) => void = () => {};

  before(async () => {
    server = createServer((socket) => accepted(socket));
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Connects to the local server and hands the accepted socket to `onAccept`. */
  function withAccepted<T>(onAccept: (socket: Socket) => T): Promise<T> {
    return new Promise((resolve, reject) => {
      const client = connect({ host: '127.0.0.1', port });
      client.on('error', () => {});
      accepted = (socket) => {
        try {
          resolve(onAccept(socket));
        } catch (err) {
          reject(err);
        } finally {
          socket.destroy();
          client.destroy();
        }
      };
    });
  }

  test('a connection that was never redirected is refused as not redirected', async () => {
    const error = await withAccepted((socket) => {
      try {
        originalDestination(socket);
        return undefined;
      } catch (err) {
        return err;
      }
    });
    assert.ok(error instanceof NotRedirectedError, String(error));
    assert.equal(error.code, 'CAPTURE_NOT_REDIRECTED');
    assert.match(error.message, /^connection from 127\.0\.0\.1:\d+ (was not redirected|was made to the capture port itself)/);
  });

  test('a closed socket has no descriptor', async () => {
    const error = await withAccepted((socket) => {
      socket.destroy();
      try {
        addonOriginalDestinationLookup().lookup(socket);
        return undefined;
      } catch (err) {
        return err;
      }
    });
    assert.ok(error instanceof NoDescriptorError, String(error));
  });

  test('the addon reports errno names and checks its argument', () => {
    const addon = loadOriginalDestinationAddon();
    const fd = openSync(repoRoot, 'r');
    try {
      assert.throws(() => addon.originalDestination(fd), (err: NodeJS.ErrnoException) => err.code === 'ENOTSOCK' && err.errno === 88 && /getsockname: ENOTSOCK/.test(err.message));
    } finally {
      closeSync(fd);
    }
    assert.throws(() => addon.originalDestination(-1), TypeError);
    assert.throws(() => addon.originalDestination('3' as unknown as number), TypeError);
  });

  test('a missing addon is refused with its path, the cause and the fix', () => {
    assert.throws(
      () => loadOriginalDestinationAddon('/nonexistent/noisemesh/original_dst.node'),
      (err: unknown) =>
        err instanceof AddonUnavailableError &&
        err.code === 'CAPTURE_ADDON_UNAVAILABLE' &&
        err.message.includes('/nonexistent/noisemesh/original_dst.node is missing') &&
        err.message.includes('npm ci') &&
        err.message.includes('node-gyp rebuild'),
    );
  });

  test('the lookup is a replaceable step: a substitute feeds the decorator without iptables', async () => {
    const fake: SocketAddress = { address: 'fd00:251:1::9', port: 5432, family: 6 };
    const seen = await withAccepted((socket) => {
      let captured: SocketAddress | undefined;
      withOriginalDestination({ lookup: () => fake }, (_s, dst) => (captured = dst))(socket);
      return captured;
    });
    assert.deepEqual(seen, fake);

    const refused = await withAccepted((socket) => {
      let reason: CaptureError | undefined;
      const failing = { lookup: (): SocketAddress => { throw new NotRedirectedError('test'); } };
      withOriginalDestination(failing, () => assert.fail('must not be called'), (_s, err) => (reason = err))(socket);
      return { code: reason?.code, destroyed: socket.destroyed };
    });
    assert.deepEqual(refused, { code: 'CAPTURE_NOT_REDIRECTED', destroyed: true });
  });
});
