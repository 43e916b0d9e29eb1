/**
 * The sidecar as a client of the secrets gateway: `GET /v1/secrets/{path}` over HTTP/1.1 on
 * an in-process stream that the proxy carries through a mesh session to the gateway peer
 * (Proxy.openSession, handed in as a MeshDialer), so the gateway sees this pod's own key.
 *
 * Everything the gateway sends is hostile: the response is bounded in bytes and time, its
 * JSON is checked for shape, and what reaches a message (a 403's rule and reasons) is cut
 * to a bounded length. A value never reaches a message.
 */
import { request, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { streamPair } from '../gateway/stream-pair.js';

/**
 * Carries `app` to `agentId`'s target `port` through a mesh session; resolves to `accepted`
 * once the session runs, else the reason (`no-peer`, `connect-failed`, a P2 status name).
 */
export type MeshDialer = (app: Duplex, agentId: string, port: number) => Promise<string>;

/** How long one fetch may take, session and answer together. */
export const FETCH_TIMEOUT_MS = 10_000;
/** The largest answer read; a secret is a few KiB. */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

export type FetchOutcome =
  | { readonly kind: 'ok'; readonly data: Readonly<Record<string, string>>; readonly version: string }
  /** `unreachable`: no session, a reset, a timeout, a 503; `denied`: 403; `invalid`: an answer that is no API answer. */
  | { readonly kind: 'unreachable' | 'denied' | 'not-found' | 'invalid'; readonly message: string };

const DIAL_HINTS: Record<string, string> = {
  'no-peer': 'the registry has no valid entry with an address for it',
  'self-not-registered': "this proxy's own key is not in the registry",
  'connect-failed': 'its mesh port did not accept a connection',
  notAllowed: 'it refused this pod (status 1: not allowed)',
  targetPortNotAllowed: 'it serves nothing on that port (status 4): check secrets.gateway.port',
};

export async function fetchSecret(dial: MeshDialer, peer: string, port: number, path: string, timeoutMs = FETCH_TIMEOUT_MS): Promise<FetchOutcome> {
  const [sessionEnd, clientEnd] = streamPair();
  const deadline = AbortSignal.timeout(timeoutMs);
  const dialed = await Promise.race([
    dial(sessionEnd, peer, port),
    new Promise<string>((resolve) => deadline.addEventListener('abort', () => resolve('timeout'), { once: true })),
  ]);
  if (dialed !== 'accepted') {
    sessionEnd.destroy();
    return { kind: 'unreachable', message: `no session to the gateway ${peer}: ${dialed}${DIAL_HINTS[dialed] ? ` (${DIAL_HINTS[dialed]})` : ''}` };
  }
  let answer: { status: number; body: Buffer };
  try {
    answer = await get(clientEnd, `/v1/secrets/${path}`, deadline);
  } catch (err) {
    return { kind: 'unreachable', message: `the gateway ${peer} did not answer: ${(err as Error).message}` };
  } finally {
    clientEnd.destroy();
  }
  let body: unknown;
  try {
    body = JSON.parse(answer.body.toString('utf8'));
  } catch {
    body = undefined;
  }
  switch (answer.status) {
    case 200:
      return checkSecret(body, path, peer);
    case 403:
      return { kind: 'denied', message: `the gateway ${peer} denied ${path}: ${denial(body)}` };
    case 404:
      return { kind: 'not-found', message: `the gateway ${peer} has no secret ${path} (404)` };
    case 503:
      return { kind: 'unreachable', message: `the gateway ${peer} is unavailable (503: its backend or audit log failed)` };
    default:
      return { kind: 'invalid', message: `the gateway ${peer} answered ${answer.status} for ${path}` };
  }
}

function get(socket: Duplex, path: string, signal: AbortSignal): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ path, method: 'GET', host: 'gateway', headers: { connection: 'close' }, createConnection: () => socket as never, signal });
    req.once('error', (err) => reject(new Error((err as NodeJS.ErrnoException).code === 'ABORT_ERR' ? 'timed out' : 'the session ended before an answer')));
    req.once('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          req.destroy();
          reject(new Error(`the answer is over ${MAX_RESPONSE_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.once('error', () => reject(new Error('the session ended in the middle of the answer')));
    });
    req.end();
  });
}

function checkSecret(body: unknown, path: string, peer: string): FetchOutcome {
  const invalid = (what: string): FetchOutcome => ({ kind: 'invalid', message: `the gateway ${peer} answered 200 for ${path} with ${what}` });
  if (typeof body !== 'object' || body === null) return invalid('no JSON object');
  const { data, version } = body as { data?: unknown; version?: unknown };
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return invalid('no data object');
  for (const value of Object.values(data)) if (typeof value !== 'string') return invalid('a value that is not a string');
  return { kind: 'ok', data: data as Record<string, string>, version: typeof version === 'string' ? version : '' };
}

/** A 403's rule and failed requirements, bounded: `rule payments-db: clearance requires "secrets-only", this pod has "internal"`. */
function denial(body: unknown): string {
  const b = (typeof body === 'object' && body !== null ? body : {}) as { ruleId?: unknown; reasons?: unknown; decisionId?: unknown };
  const rule = typeof b.ruleId === 'string' ? `rule ${cut(b.ruleId, 100)}` : 'no rule matched';
  const reasons = Array.isArray(b.reasons) ? b.reasons.slice(0, 8) : [];
  const parts = reasons.map((r: unknown) => {
    const x = (typeof r === 'object' && r !== null ? r : {}) as { requirement?: unknown; required?: unknown; actual?: unknown; message?: unknown };
    const name = typeof x.requirement === 'string' ? cut(x.requirement, 40) : 'requirement';
    if ((x.required === undefined || x.required === null) && typeof x.message === 'string') return `${name}: ${cut(x.message, 200)}`;
    return `${name} requires ${cut(JSON.stringify(x.required) ?? 'null', 80)}, this pod has ${cut(JSON.stringify(x.actual) ?? 'null', 80)}`;
  });
  const id = typeof b.decisionId === 'string' ? ` (decision ${cut(b.decisionId, 40)})` : '';
  return `${rule}${parts.length > 0 ? `: ${parts.join('; ')}` : ''}${id}`;
}

function cut(text: string, max: number): string {
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return clean.length > max ? `${clean.slice(0, max - 3)}...` : clean;
}
