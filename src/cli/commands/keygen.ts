import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { encodeKey, nativeBackend } from '../../noise/index.js';
import type { Command } from '../command.js';

export const keygen: Command = {
  async run(args) {
    const { values } = parseArgs({ args, options: { out: { type: 'string' } } });
    const keyPair = nativeBackend.dh('25519').generateKeyPair();
    const privateText = `${encodeKey(keyPair.privateKey)}\n`;
    if (values.out !== undefined) {
      // Written owner-only, and never echoed: the private key's only copy is the file.
      writeFileSync(values.out, privateText, { mode: 0o600, flag: 'wx' });
      process.stdout.write(`${encodeKey(keyPair.publicKey)}\n`);
    } else {
      // `wg genkey` style: the private key on stdout, the public key on stderr.
      process.stdout.write(privateText);
      process.stderr.write(`public key: ${encodeKey(keyPair.publicKey)}\n`);
    }
    keyPair.privateKey.fill(0);
    return 0;
  },
};
