import { lstatSync, renameSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeKey, nativeBackend } from '../../noise/index.js';
import type { Command } from '../command.js';
import { UsageError } from '../usage-error.js';

const USAGE = `usage: noisemesh keygen [--out FILE [--force]]

Makes an X25519 key pair: the private key as standard base64 of 32 bytes (the format
\`wg genkey\` writes, and identity.privateKeyFile reads), and its public key, which goes in
the registry (spec.peers[].publicKey). Prints one line for each, labelled:

  private key: <base64>                       without --out
  private key: written to FILE (mode 0600)    with --out; the key is not printed
  public key: <base64>

  --out FILE   write the private key to FILE, readable by its owner only; refuses a FILE
               that exists, so a key is never lost by accident
  --force      with --out: replace FILE if it exists (the old key is gone for good); only
               a regular file is replaced, never a symlink, FIFO or device
`;

export const keygen: Command = {
  usage: USAGE,
  async run(args) {
    const { values } = parseArgs({ args, options: { out: { type: 'string' }, force: { type: 'boolean', default: false } } });
    if (values.force && values.out === undefined) throw new UsageError('--force only applies to --out FILE');
    if (values.out === '') throw new UsageError('--out needs a file name, e.g. --out ./key');
    const keyPair = nativeBackend.dh('25519').generateKeyPair();
    const privateText = `${encodeKey(keyPair.privateKey)}\n`;
    try {
      if (values.out !== undefined) {
        writeKeyFile(values.out, privateText, values.force!);
        process.stdout.write(`private key: written to ${values.out} (mode 0600)\npublic key: ${encodeKey(keyPair.publicKey)}\n`);
      } else {
        process.stdout.write(`private key: ${privateText}public key: ${encodeKey(keyPair.publicKey)}\n`);
      }
    } finally {
      keyPair.privateKey.fill(0);
    }
    return 0;
  },
};

/** What lstat says a path that is no regular file is, in words. */
function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/**
 * Writes the key owner-only. A file that exists is refused unless `force`; then the key is
 * written beside it and renamed over it, so that no moment leaves a half-written key or a
 * key readable by others in its place. Only a regular file is ever replaced: the rename
 * would put a key file in the place of a device (`--out /dev/null --force` as root), a FIFO
 * or a symlink, rather than write through it, so anything else is refused, with or
 * without `--force`, before any hint suggests `--force`.
 */
function writeKeyFile(file: string, text: string, force: boolean): void {
  let existing;
  try {
    existing = lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing?.isDirectory()) throw new UsageError(`--out ${file} is a directory: name the file to write, e.g. --out ${join(file, 'key')}`);
  if (existing !== undefined && !existing.isFile()) {
    throw new UsageError(`--out ${file} is ${kindOf(existing)}, not a regular file: keygen writes and replaces only regular files; name a new file`);
  }
  if (existing !== undefined && !force) {
    throw new UsageError(`--out ${file} already exists: refusing to overwrite a key; add --force to replace it`);
  }
  if (existing === undefined) {
    writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
    return;
  }
  const temporary = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  writeFileSync(temporary, text, { mode: 0o600, flag: 'wx' });
  try {
    renameSync(temporary, file);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  }
}
