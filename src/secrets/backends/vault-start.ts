/**
 * What the gateway checks of `gateway.backend.vault` before it opens the backend, once, at
 * start (docs/gateway.md, Vault): the CA bundle is PEM certificates, and an address without
 * TLS is said in one warning line.
 *
 * Here rather than in vault.ts, which reads the bundle and takes whatever bytes it holds:
 * a token file named as `caFile` by mistake would start, and fail every read later with a
 * TLS error that names no setting.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { FileReadError, readRegularFile } from '../../files/index.js';
import { SecretsBackendError } from '../backend.js';
import type { VaultBackendConfig } from '../config.js';
import type { SecretsLog } from '../log.js';

/** A CA bundle larger than this is no CA bundle (the Mozilla bundle is about 220 KiB). */
export const MAX_CA_FILE_BYTES = 4 * 1024 * 1024;

const SETTING = 'gateway.backend.vault.caFile';
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n([\s\S]*?)-----END \1-----/g;

/**
 * Reads `caFile` and checks it holds at least one PEM `CERTIFICATE` block and that every
 * block is one that parses as an X.509 certificate. Throws SecretsBackendError naming the
 * setting and the fix; the file's content is never in the message (a token or a key given
 * by mistake must not reach a log).
 */
export async function checkVaultCaFile(file: string): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(file, { maxBytes: MAX_CA_FILE_BYTES });
  } catch (err) {
    if (err instanceof FileReadError) throw new SecretsBackendError('vault', 'unavailable', err.explain(SETTING));
    throw err;
  }
  const text = bytes.toString('latin1');
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const fix = `${SETTING}: ${file} must be a PEM bundle of the CA certificates that sign Vault's certificate (-----BEGIN CERTIFICATE----- blocks)`;
  if (blocks.length === 0) throw new SecretsBackendError('vault', 'unavailable', `${fix}; it holds none (is it the token file, or a DER file? convert with openssl x509 -inform der)`);
  for (const [i, block] of blocks.entries()) {
    if (block[1] !== 'CERTIFICATE') {
      // The label only: a `PRIVATE KEY` block's content is a secret.
      throw new SecretsBackendError('vault', 'unavailable', `${fix}; block ${i + 1} is a ${block[1]}, not a CERTIFICATE: remove it`);
    }
    try {
      new X509Certificate(block[0]);
    } catch {
      throw new SecretsBackendError('vault', 'unavailable', `${fix}; block ${i + 1} is no readable X.509 certificate: replace it`);
    }
  }
}

/** True for an address whose host is a loopback address or `localhost`: its plain HTTP stays on this host. */
export function isLoopbackUrl(address: string): boolean {
  const host = new URL(address).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host) || /^::ffff:7f[0-9a-f]{2}:/.test(host);
  return false;
}

/**
 * The start-time checks: the CA bundle (throws), then one warning line when the address is
 * plain `http://` to another host, which carries the Vault token and every secret in clear.
 */
export async function checkVaultAtStart(config: VaultBackendConfig, log: SecretsLog): Promise<void> {
  if (config.caFile !== undefined) await checkVaultCaFile(config.caFile);
  if (config.address.startsWith('http:') && !isLoopbackUrl(config.address)) {
    log.warn(
      { event: 'vault-plaintext', address: config.address },
      'vault: gateway.backend.vault.address is plain http to another host: the Vault token and every secret cross the network unencrypted; use https:// (and caFile), or a loopback address',
    );
  }
}
