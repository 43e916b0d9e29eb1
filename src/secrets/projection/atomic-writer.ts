/**
 * Writes a set of files into a directory so that a reader sees either the whole old set or
 * the whole new one, never a mix, a partial file or a missing one, as kubelet's AtomicWriter
 * (pkg/volume/util/atomic_writer.go) does for Secret and ConfigMap volumes:
 *
 * ```
 * DIR/..2024_05_01_12_00_00.a1B2c3   the files of one version (dirMode; each file fileMode)
 * DIR/..data -> ..2024_05_01_12_00_00.a1B2c3
 * DIR/db.json -> ..data/db.json       what the app opens; never changes once made
 * ```
 *
 * A new version is written complete (each file written and fsynced) into a new timestamped
 * directory; then a `..data_tmp` symlink to it is renamed over `..data`, which is one atomic
 * rename(2): an open() of `DIR/db.json` resolves through the old `..data` or the new one.
 * Then the user-visible links of new names are made and those of dropped names removed.
 *
 * The previous version's directory is kept until the next write (kubelet removes it at once):
 * a reader that resolved `..data` just before the rename still finds its file. Older ones,
 * and a `..data_tmp` or directory left by a crash, are removed.
 *
 * Modes: DIR is created with `dirMode` when missing (an existing DIR, such as an emptyDir
 * volume the kubelet made, is left as it is); each version's directory gets `dirMode`, each
 * file `fileMode`, whatever the umask, and a set-group-ID bit that a directory inherits
 * (kubelet sets it on volumes of a pod with `fsGroup`) is kept, so the files belong to that
 * group.
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readdir, readFile, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const DATA_LINK = '..data';
const DATA_TMP = '..data_tmp';
const S_ISGID = 0o2000;

export interface AtomicWriterModes {
  /** Of DIR when it is created, and of each version's directory. */
  readonly dirMode: number;
  readonly fileMode: number;
}

/** A write that failed; `message` names the file and the system's reason, never content. */
export class ProjectionWriteError extends Error {
  readonly code = 'NOISEMESH_PROJECTION_WRITE';
}

export class AtomicWriter {
  constructor(
    readonly dir: string,
    private readonly modes: AtomicWriterModes,
  ) {}

  /**
   * Whether DIR holds exactly `files` now (names, bytes and mode), read through `..data`.
   * False when anything differs or cannot be read.
   */
  async holds(files: ReadonlyMap<string, Buffer>): Promise<boolean> {
    const version = join(this.dir, DATA_LINK);
    try {
      const names = (await readdir(version)).sort();
      if (names.length !== files.size || names.some((n) => !files.has(n))) return false;
      for (const [name, bytes] of files) {
        const path = join(version, name);
        if (((await stat(path)).mode & 0o7777) !== this.modes.fileMode) return false;
        if (!(await readFile(path)).equals(bytes)) return false;
        if (!(await this.linked(name))) return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Whether a version is in place (`..data` resolves to a directory). */
  async hasVersion(): Promise<boolean> {
    try {
      return (await stat(join(this.dir, DATA_LINK))).isDirectory();
    } catch {
      return false;
    }
  }

  /**
   * Writes `files` (plain names: no slash, not starting with `.`) as the new version and
   * swaps it in. Throws ProjectionWriteError; a failure before the rename leaves the old
   * version in force, and its leftovers are removed by the next write.
   */
  async write(files: ReadonlyMap<string, Buffer>): Promise<void> {
    const { dir, modes } = this;
    for (const name of files.keys()) {
      if (name.includes('/') || name.startsWith('.') || name === '') throw new ProjectionWriteError(`${JSON.stringify(name)} is not a plain file name`);
    }
    await step(`cannot create ${dir}`, () => makeDirectory(dir, modes.dirMode));
    const previous = await this.currentVersion();
    const version = `..${timestamp(new Date())}.${randomBytes(6).toString('base64url')}`;
    const versionPath = join(dir, version);
    await step(`cannot create ${versionPath}`, async () => {
      await mkdir(versionPath, { mode: modes.dirMode });
      const inherited = (await stat(versionPath)).mode & S_ISGID;
      await chmod(versionPath, modes.dirMode | inherited);
    });
    try {
      for (const [name, bytes] of files) {
        const path = join(versionPath, name);
        await step(`cannot write ${path}`, async () => {
          const handle = await open(path, 'wx', modes.fileMode);
          try {
            await handle.writeFile(bytes);
            await handle.chmod(modes.fileMode);
            await handle.sync();
          } finally {
            await handle.close();
          }
        });
      }
      await step(`cannot sync ${versionPath}`, () => syncDirectory(versionPath));
      const tmp = join(dir, DATA_TMP);
      await step(`cannot link ${tmp}`, async () => {
        await rm(tmp, { force: true });
        await symlink(version, tmp);
        await rename(tmp, join(dir, DATA_LINK));
      });
    } catch (err) {
      await rm(versionPath, { recursive: true, force: true }).catch(() => {});
      throw err;
    }
    // From here the new version is in force; what follows tidies around it.
    for (const name of files.keys()) {
      if (await this.linked(name)) continue;
      const path = join(dir, name);
      await step(`cannot link ${path}`, async () => {
        const existing = await lstat(path).catch(() => undefined);
        if (existing?.isDirectory()) throw new Error(`a directory is in the way: remove it`);
        const tmp = join(dir, `..${name}.tmp`);
        await rm(tmp, { force: true });
        await symlink(`${DATA_LINK}/${name}`, tmp);
        await rename(tmp, path);
      });
    }
    await step(`cannot sync ${dir}`, () => syncDirectory(dir));
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.name.startsWith('..')) {
        if (entry.name === DATA_LINK || entry.name === version || entry.name === previous) continue;
        if (entry.isDirectory() || entry.name.endsWith('.tmp') || entry.name === DATA_TMP) await rm(path, { recursive: true, force: true }).catch(() => {});
      } else if (entry.isSymbolicLink() && !files.has(entry.name)) {
        // A name this version dropped: only links of ours, into ..data, are removed.
        const target = await readlink(path).catch(() => '');
        if (target.startsWith(`${DATA_LINK}/`)) await unlink(path).catch(() => {});
      }
    }
  }

  /** The version directory `..data` names now, if any. */
  private async currentVersion(): Promise<string | undefined> {
    try {
      return await readlink(join(this.dir, DATA_LINK));
    } catch {
      return undefined;
    }
  }

  private async linked(name: string): Promise<boolean> {
    try {
      return (await readlink(join(this.dir, name))) === `${DATA_LINK}/${name}`;
    } catch {
      return false;
    }
  }
}

/**
 * `mkdir -p`, one level at a time. Node 20's `mkdir(..., {recursive: true})` never returns
 * when mkdir(2) answers ENOENT under a parent that exists (a path in /proc), spinning a
 * thread at full CPU; here each level is tried once, so the walk ends within the path's
 * depth. An existing non-directory in the way is ENOTDIR, not EEXIST.
 */
async function makeDirectory(dir: string, mode: number): Promise<void> {
  try {
    await mkdir(dir, { mode });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if ((await stat(dir)).isDirectory()) return;
      throw Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR' });
    }
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
    await makeDirectory(parent, mode);
    // The parent exists now: a second ENOENT is final (no recursion from here).
    try {
      await mkdir(dir, { mode });
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST' || !(await stat(dir)).isDirectory()) throw again;
    }
  }
}

/** `2024_05_01_12_00_00`, UTC, as kubelet names its version directories. */
function timestamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}`;
}

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function step<T>(what: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (err) {
    if (err instanceof ProjectionWriteError) throw err;
    const e = err as NodeJS.ErrnoException;
    const hint =
      e.code === 'EACCES' || e.code === 'EPERM' ? " (permission denied: the directory must be writable by the proxy's user)"
      : e.code === 'ENOTDIR' ? ' (not a directory: a file is in the way; secrets.project.dir must name a directory)'
      : '';
    throw new ProjectionWriteError(`${what}: ${e.code ?? e.message}${hint}`);
  }
}
