// The JavaScript session pump (src/proxy/session/secure-session.ts): what every session runs on
// with NOISEMESH_NATIVE_PUMP=0 or without the session_pump addon, and what the gateway's
// in-process streams always run on. proxy-loopback's whole suite again (integrity both ways,
// half-close orders, resets, forged and truncated frames, revocation, backpressure bounds),
// with the native pump off, and a check that no session reached it.
import { test } from 'node:test';
import assert from 'node:assert/strict';

// Before anything loads src/proxy: the setting is read once, when native-pump.ts loads.
process.env.NOISEMESH_NATIVE_PUMP = '0';
const { nativePumpStarts, sessionPump } = await import('../src/proxy/session/native-pump.js');
await import('./proxy-loopback.test.js');

test('with NOISEMESH_NATIVE_PUMP=0, every session of the suite above ran on the JavaScript pump', () => {
  assert.deepEqual(sessionPump(), { engine: 'javascript', reason: 'NOISEMESH_NATIVE_PUMP=0' });
  assert.equal(nativePumpStarts(), 0);
});
