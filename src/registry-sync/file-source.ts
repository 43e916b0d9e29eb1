/**
 * A registry read from one YAML file, reloaded when it changes.
 *
 * Editors and Kubernetes replace files rather than write them: an editor renames a new file
 * over the old one, and a ConfigMap volume swaps its `..data` symlink to a new timestamped
 * directory. A watch on the file itself would follow the old inode and go silent, so the
 * directory is watched (and, when the path is a symlink, the directory of its current target
 * as well), and every event leads to a fresh open and stat. fs.watch is not reliable on every
 * filesystem (NFS, some overlay mounts), so a slow poll backs it up.
 *
 * A check opens the file, compares (device, inode, size, mtime, ctime) with the last read and
 * stops there when nothing moved; otherwise it reads, hashes and parses only content that
 * changed. A stat equal to the last one is trusted only once the last read happened well after
 * the file's mtime: a write within the same timestamp tick as the previous one would
 * otherwise go unseen (git's "racy" files). The open never blocks and anything but a regular
 * file is refused (files/): a FIFO at the path would otherwise hold every later check.
 *
 * Content may be caught mid-write (truncated, then written in pieces). New content is applied
 * whole only once nothing in it could come from a half-written file; until it has stayed the
 * same for the settle time, only what a prefix of a file cannot fake is applied (see
 * partial-write.ts), and errors in it are not reported: a second read after the settle time
 * decides.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { FileReadError, openRegularFile, readOpenedFile } from '../files/index.js';
import { Emitter, type Listener } from './emitter.js';
import { holdBackUnsettled, onePrefixOfOther, pendingChanges, sameEntries } from './partial-write.js';
import { RegistrySourceError, type RegistryProblem } from './problems.js';
import { buildSnapshot } from './registry-state.js';
import type { RegistrySnapshot } from './snapshot.js';
import type { RegistrySource, RegistrySourceEvents, SourceStats } from './source.js';
import { parseRegistryBytes, type ParsedRegistryFile } from './yaml.js';

/** The timers a source runs on; tests pass a manual clock. */
export interface SourceClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const systemClock: SourceClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface FileSourceOptions {
  /** Quiet time after a watch event before the check, coalescing an editor's burst. Default 50 ms. */
  readonly debounceMs?: number;
  /** Longest a check waits behind a continuous burst of events. Default 200 ms. */
  readonly maxDelayMs?: number;
  /** Interval of the fallback poll. Default 2000 ms. */
  readonly pollIntervalMs?: number;
  /** Larger files are refused. Default 16 MiB. */
  readonly maxBytes?: number;
  /** False: poll only, for filesystems where fs.watch misreports. Default true. */
  readonly watch?: boolean;
  /**
   * How long new content must stay the same before what a half-written file could also say
   * (a removal, a lowered generation, a revoked key made valid, any other field) is applied,
   * and before its errors are reported. Default 450 ms, so that a removal lands within 1 s.
   */
  readonly settleMs?: number;
  readonly clock?: SourceClock;
}

/** Content read but not yet applied whole: it may be a file caught mid-write. */
interface Unsettled {
  readonly hash: string;
  /** When it was first read (clock ms). */
  readonly since: number;
  readonly parsed: ParsedRegistryFile | { readonly ok: false; readonly problems: readonly RegistryProblem[] };
}

/**
 * A change to a key in force that unsettled content makes and that is held back: since when
 * reads have made this same change, and whether a second write made it (partial-write.ts).
 */
interface HeldChange {
  /** The key's new entry fingerprint, or `absent`. */
  readonly change: string;
  /** When a read first made it (clock ms). */
  readonly since: number;
  /** The content of that read, until a read that is not one write with it is seen; then null. */
  first: Buffer | null;
}

/** How recent an mtime must be, relative to our read, to distrust an unchanged stat. */
const RACY_WINDOW_NS = 2_000_000_000n;

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

export class FileRegistrySource implements RegistrySource {
  readonly origin: string;
  readonly #file: string;
  readonly #absolute: string;
  readonly #debounceMs: number;
  readonly #maxDelayMs: number;
  readonly #pollIntervalMs: number;
  readonly #maxBytes: number;
  readonly #watch: boolean;
  readonly #settleMs: number;
  readonly #clock: SourceClock;
  readonly #events = new Emitter<RegistrySourceEvents>();
  readonly #watchers = new Map<string, FSWatcher>();

  #running = false;
  #debounce: unknown;
  #burstStartedAt = 0;
  #poll: unknown;
  #settleTimer: unknown;
  /** When the settle timer fires (clock ms). */
  #settleAt = 0;
  #inflight: Promise<void> | undefined;
  #again = false;
  #targetDir: string | undefined;

  /** Stat of the last read, content hash of the last content processed (good or not). */
  #stamp: string | undefined;
  #racy = true;
  #hash: string | undefined;
  /** True while the content last processed is content that failed to parse. */
  #failedOnContent = false;
  #lastFailure: string | undefined;
  /** The snapshot last emitted, which the registry holds. */
  #inForce: RegistrySnapshot | undefined;
  #unsettled: Unsettled | undefined;
  /** Held changes by key, while content is unsettled; emptied when content settles. */
  readonly #held = new Map<string, HeldChange>();

  #reloads = 0;
  #errors = 0;
  #healthy = false;
  #lastReloadAt: number | undefined;
  #lastErrorAt: number | undefined;

  constructor(file: string, options: FileSourceOptions = {}) {
    this.#file = file;
    this.#absolute = resolve(file);
    this.origin = `file ${file}`;
    this.#debounceMs = options.debounceMs ?? 50;
    this.#maxDelayMs = Math.max(options.maxDelayMs ?? 200, this.#debounceMs);
    this.#pollIntervalMs = options.pollIntervalMs ?? 2000;
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.#watch = options.watch ?? true;
    this.#settleMs = options.settleMs ?? 450;
    this.#clock = options.clock ?? systemClock;
  }

  on<K extends keyof RegistrySourceEvents>(event: K, listener: Listener<RegistrySourceEvents[K]>): () => void {
    return this.#events.on(event, listener);
  }

  stats(): SourceStats {
    return {
      reloads: this.#reloads,
      errors: this.#errors,
      healthy: this.#healthy,
      lastReloadAt: this.#lastReloadAt,
      lastErrorAt: this.#lastErrorAt,
    };
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#syncWatchers();
    this.#armPoll();
    void this.#check();
  }

  /**
   * Checks the file now, as a watch event would; resolves when that check (or the one in
   * progress) is done.
   */
  refresh(): Promise<void> {
    return this.#check();
  }

  async stop(): Promise<void> {
    this.#running = false;
    for (const timer of [this.#debounce, this.#poll, this.#settleTimer]) {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
    }
    this.#debounce = undefined;
    this.#poll = undefined;
    this.#settleTimer = undefined;
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
    // Its file handle is closed when it settles; its result is dropped (#running is false).
    await this.#inflight;
  }

  /** Watches the file's directory, and its symlink target's directory when that differs. */
  #syncWatchers(): void {
    if (!this.#running || !this.#watch) return;
    const wanted = new Set([dirname(this.#absolute)]);
    if (this.#targetDir !== undefined) wanted.add(this.#targetDir);
    for (const [dir, w] of this.#watchers) {
      if (!wanted.has(dir)) {
        w.close();
        this.#watchers.delete(dir);
      }
    }
    for (const dir of wanted) {
      if (this.#watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: true }, () => this.#schedule());
        // A watched directory that disappears (an old ConfigMap generation) ends its watcher;
        // the next check sets up the ones still wanted, and the poll covers the gap.
        w.on('error', () => {
          w.close();
          if (this.#watchers.get(dir) === w) this.#watchers.delete(dir);
        });
        this.#watchers.set(dir, w);
      } catch {
        // Directory missing or not watchable: the poll carries on, and retries this on each check.
      }
    }
  }

  #armPoll(): void {
    this.#poll = this.#clock.setTimeout(() => {
      if (!this.#running) return;
      void this.#check();
      this.#armPoll();
    }, this.#pollIntervalMs);
  }

  #schedule(): void {
    if (!this.#running) return;
    const now = this.#clock.now();
    if (this.#debounce === undefined) this.#burstStartedAt = now;
    else this.#clock.clearTimeout(this.#debounce);
    const delay = Math.max(0, Math.min(this.#debounceMs, this.#burstStartedAt + this.#maxDelayMs - now));
    this.#debounce = this.#clock.setTimeout(() => {
      this.#debounce = undefined;
      void this.#check();
    }, delay);
  }

  /** One check at a time; events during a check lead to one more check after it. */
  #check(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    if (this.#inflight !== undefined) {
      this.#again = true;
      return this.#inflight;
    }
    this.#inflight = this.#load().finally(() => {
      this.#inflight = undefined;
      if (this.#running) {
        this.#syncWatchers();
        if (this.#again) {
          this.#again = false;
          this.#schedule();
        }
      }
    });
    return this.#inflight;
  }

  async #load(): Promise<void> {
    let bytes: Buffer;
    let stamp: string;
    let mtimeNs: bigint;
    try {
      const opened = await openRegularFile(this.#absolute);
      try {
        const st = opened.stat;
        stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
        mtimeNs = st.mtimeNs;
        if (stamp === this.#stamp && !this.#racy) return this.#unchanged();
        bytes = await readOpenedFile(opened, this.#file, { maxBytes: this.#maxBytes });
      } finally {
        await opened.handle.close();
      }
      try {
        this.#targetDir = dirname(await realpath(this.#absolute));
      } catch {
        this.#targetDir = undefined;
      }
    } catch (err) {
      if (!(err instanceof FileReadError)) {
        return this.#fail(this.#readProblem(`cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unknown error'})`));
      }
      const why =
        err.failure === 'missing' ? 'does not exist (yet): create it, or fix registry.file'
        : err.failure === 'permission' ? 'cannot be read: permission denied; make it readable by the proxy user'
        : err.failure === 'not-regular' ? `${err.reason}: point registry.file at the YAML file itself`
        : err.failure === 'too-large' ? `is larger than ${this.#maxBytes} bytes: split the registry or raise the limit`
        : err.reason;
      return this.#fail(this.#readProblem(why));
    }
    if (!this.#running) return;
    this.#stamp = stamp;
    this.#racy = nowNs() - mtimeNs < RACY_WINDOW_NS;

    const hash = createHash('sha256').update(bytes).digest('hex');
    if (hash === this.#hash) return this.#unchanged();
    this.#hash = hash;

    const parsed: Unsettled['parsed'] = parseRegistryBytes(bytes, this.#file);
    this.#clearSettleTimer();
    const unsettled: Unsettled = { hash, since: this.#clock.now(), parsed };
    this.#unsettled = unsettled;
    if (this.#inForce === undefined || this.#settleMs <= 0) return this.#settle(unsettled);
    if (!parsed.ok) return this.#armSettle(unsettled);

    const next = buildSnapshot(parsed.objects, { origin: this.origin, previous: this.#inForce, refusedObjects: parsed.refusedObjects }, parsed.problems);
    this.#trackHeld(next, bytes);
    this.#applyUnsettled(unsettled, next);
  }

  /** Records, per key in force, the change this read makes and whether a second write made it too. */
  #trackHeld(next: RegistrySnapshot, bytes: Buffer): void {
    const changes = pendingChanges(this.#inForce!, next);
    for (const key of [...this.#held.keys()]) if (!changes.has(key)) this.#held.delete(key);
    const now = this.#clock.now();
    for (const [key, change] of changes) {
      const seen = this.#held.get(key);
      if (seen === undefined || seen.change !== change) this.#held.set(key, { change, since: now, first: bytes });
      else if (seen.first !== null && !onePrefixOfOther(seen.first, bytes)) seen.first = null;
    }
  }

  /**
   * Puts in force what unsettled content may change now: what a prefix cannot fake, and the
   * changes two writes confirmed that have stood for the settle time.
   */
  #applyUnsettled(unsettled: Unsettled, next: RegistrySnapshot): void {
    const now = this.#clock.now();
    const confirmed = new Set<string>();
    let due: number | undefined;
    for (const [key, h] of this.#held) {
      if (h.first !== null) continue;
      if (now - h.since >= this.#settleMs) confirmed.add(key);
      else due = Math.min(due ?? Infinity, h.since + this.#settleMs);
    }
    const { snapshot, held } = holdBackUnsettled(this.#inForce!, next, confirmed);
    if (held === 0 && (next.keptLastGood ?? 0) === 0) {
      // Nothing in it could be a half-written file's doing: in force at once, problems and all.
      this.#unsettled = undefined;
      this.#held.clear();
      return this.#apply(next);
    }
    if (!sameEntries(snapshot, this.#inForce!)) this.#apply(snapshot);
    this.#armSettle(unsettled, due);
  }

  /**
   * The content is the one already processed. If it is still waiting to settle, it may have
   * settled now. If it loaded, the source is healthy again (a file that vanished for a
   * moment came back); if it failed, that was reported.
   */
  #unchanged(): void {
    const unsettled = this.#unsettled;
    if (unsettled !== undefined) {
      if (this.#clock.now() - unsettled.since >= this.#settleMs) this.#settle(unsettled);
      else if (!unsettled.parsed.ok || this.#inForce === undefined) this.#armSettle(unsettled);
      else {
        const { parsed } = unsettled;
        this.#applyUnsettled(unsettled, buildSnapshot(parsed.objects, { origin: this.origin, previous: this.#inForce, refusedObjects: parsed.refusedObjects }, parsed.problems));
      }
      return;
    }
    if (!this.#failedOnContent) this.#succeed();
  }

  /** The content stayed the same for the settle time (or nothing is in force yet): apply it whole. */
  #settle(unsettled: Unsettled): void {
    this.#clearSettleTimer();
    this.#unsettled = undefined;
    this.#held.clear();
    const { parsed } = unsettled;
    if (!parsed.ok) {
      this.#failedOnContent = true;
      return this.#fail(...parsed.problems);
    }
    this.#apply(buildSnapshot(parsed.objects, { origin: this.origin, previous: this.#inForce, refusedObjects: parsed.refusedObjects }, parsed.problems));
  }

  /**
   * A second look once `unsettled` is settleMs old, or at `due` if that is sooner (a change
   * two writes made reaches the settle time): a check; the content decides.
   */
  #armSettle(unsettled: Unsettled, due?: number): void {
    if (!this.#running) return;
    const at = Math.min(unsettled.since + this.#settleMs, due ?? Infinity);
    if (this.#settleTimer !== undefined) {
      if (this.#settleAt <= at) return;
      this.#clearSettleTimer();
    }
    this.#settleAt = at;
    const wait = Math.max(0, at - this.#clock.now());
    this.#settleTimer = this.#clock.setTimeout(() => {
      this.#settleTimer = undefined;
      void this.#check();
    }, wait);
  }

  #clearSettleTimer(): void {
    if (this.#settleTimer !== undefined) this.#clock.clearTimeout(this.#settleTimer);
    this.#settleTimer = undefined;
  }

  #apply(snapshot: RegistrySnapshot): void {
    this.#failedOnContent = false;
    this.#inForce = snapshot;
    this.#reloads++;
    this.#lastReloadAt = Date.now();
    this.#succeed();
    this.#events.deliver('snapshot', snapshot);
  }

  #succeed(): void {
    this.#healthy = true;
    this.#lastFailure = undefined;
  }

  #readProblem(why: string): RegistryProblem {
    return {
      code: 'REGISTRY_READ',
      severity: 'error',
      file: this.#file,
      line: undefined,
      document: 'file',
      path: '',
      message: why,
    };
  }

  #fail(...found: RegistryProblem[]): void {
    if (!this.#running) return;
    this.#healthy = false;
    // Say what the failure leaves in force: only a source that loaded once has a registry to keep.
    const consequence = this.#inForce === undefined ? 'no registry is loaded until this is fixed' : 'the last good registry stays in force';
    const problems = found.map((p) => ({ ...p, message: `${p.message}; ${consequence}` }));
    const error = new RegistrySourceError(problems);
    // Polling a missing file would repeat one failure every interval: report changes only.
    if (error.message === this.#lastFailure) return;
    this.#lastFailure = error.message;
    this.#errors++;
    this.#lastErrorAt = Date.now();
    this.#events.deliver('error', error);
  }
}
