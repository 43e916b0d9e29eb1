// The proxy's configuration as tools outside the project write it: the keys that choose
// where inbound traffic goes (inbound.targetHost) and how soon a vanished peer is noticed
// (keepalive), with their defaults and every refusal naming the path and the fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProxyConfig } from '../src/cli/config/proxy-config.js';
import { ConfigError } from '../src/cli/config/config-reader.js';
import { DEFAULT_KEEPALIVE, deadPeerBoundSeconds } from '../src/proxy/index.js';

const minimal = { identity: { agentId: 'shop/api' }, registry: { file: '/etc/noisemesh/registry.yaml' } };

/** The problems the document is refused with, as `path: message` lines. */
function problems(document: Record<string, unknown>): string[] {
  try {
    parseProxyConfig({ ...minimal, ...document });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail('the configuration was accepted');
}

test('defaults: no target host (the arrival address), keepalive 10 s idle, 3 probes 5 s apart: 25 s', () => {
  const config = parseProxyConfig(minimal);
  assert.equal(config.inbound.targetHost, null);
  assert.deepEqual(config.keepalive, { idleSeconds: 10, intervalSeconds: 5, probes: 3 });
  assert.deepEqual(config.keepalive, DEFAULT_KEEPALIVE);
  assert.equal(deadPeerBoundSeconds(config.keepalive), 25);
});

test('inbound.targetHost, when set, is an IP address and is kept as written', () => {
  assert.equal(parseProxyConfig({ ...minimal, inbound: { targetHost: '127.0.0.1' } }).inbound.targetHost, '127.0.0.1');
  assert.equal(parseProxyConfig({ ...minimal, inbound: { targetHost: '::1' } }).inbound.targetHost, '::1');
  assert.deepEqual(problems({ inbound: { targetHost: 'localhost' } }), [
    'inbound.targetHost: must be an IP address such as 0.0.0.0, 127.0.0.1 or ::; got "localhost"',
  ]);
});

test('keepalive: each key may be set alone; the others keep their defaults', () => {
  assert.deepEqual(parseProxyConfig({ ...minimal, keepalive: { idleSeconds: 1, intervalSeconds: 1, probes: 3 } }).keepalive, {
    idleSeconds: 1,
    intervalSeconds: 1,
    probes: 3,
  });
  assert.deepEqual(parseProxyConfig({ ...minimal, keepalive: { probes: 9 } }).keepalive, { idleSeconds: 10, intervalSeconds: 5, probes: 9 });
  assert.deepEqual(parseProxyConfig({ ...minimal, keepalive: {} }).keepalive, DEFAULT_KEEPALIVE);
  // The kernel's maxima are accepted, as long as the bound fits TCP_USER_TIMEOUT.
  assert.deepEqual(parseProxyConfig({ ...minimal, keepalive: { idleSeconds: 32767, intervalSeconds: 16000, probes: 127 } }).keepalive, {
    idleSeconds: 32767,
    intervalSeconds: 16000,
    probes: 127,
  });
});

test('keepalive: out-of-range, fractional and mistyped values are refused with the range', () => {
  assert.deepEqual(problems({ keepalive: { idleSeconds: 0, intervalSeconds: 1.5, probes: 128 } }), [
    'keepalive.idleSeconds: must be an integer from 1 to 32767; got 0',
    'keepalive.intervalSeconds: must be an integer from 1 to 32767; got 1.5',
    'keepalive.probes: must be an integer from 1 to 127; got 128',
  ]);
  assert.deepEqual(problems({ keepalive: { idleSeconds: '10s', intervalSeconds: -5, probes: 0 } }), [
    'keepalive.idleSeconds: must be an integer from 1 to 32767; got "10s"',
    'keepalive.intervalSeconds: must be an integer from 1 to 32767; got -5',
    'keepalive.probes: must be an integer from 1 to 127; got 0',
  ]);
  assert.deepEqual(problems({ keepalive: { idleSeconds: 32768 } }), ['keepalive.idleSeconds: must be an integer from 1 to 32767; got 32768']);
});

test('keepalive: a typo is named with the key it probably meant; a non-mapping is refused', () => {
  assert.deepEqual(problems({ keepalive: { idleSecond: 5 } }), ["keepalive.idleSecond: unknown key: did you mean 'idleSeconds'?"]);
  assert.deepEqual(problems({ keepalive: 10 }), ['keepalive: must be a mapping with keys idleSeconds, intervalSeconds, probes; got 10']);
  assert.deepEqual(problems({ keepAlive: { idleSeconds: 5 } }), ["keepAlive: unknown key: did you mean 'keepalive'?"]);
});

test('keepalive: a bound too long for TCP_USER_TIMEOUT (2^31-1 ms) is refused as a whole', () => {
  assert.deepEqual(problems({ keepalive: { idleSeconds: 32767, intervalSeconds: 32767, probes: 127 } }), [
    'keepalive: idleSeconds + intervalSeconds x probes is the dead-peer bound and TCP_USER_TIMEOUT, at most 2147483 s; got 4194176',
  ]);
});
