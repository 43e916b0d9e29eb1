/**
 * A source wired to an index: what the proxy and the gateway hold. Snapshots from the source
 * replace the index; the index's revocations and summaries, the snapshots (with their
 * problems) and the source's errors are all re-emitted here, so one object is enough to log
 * from, export metrics from, and abort sessions from.
 */
import { Emitter, type Listener } from './emitter.js';
import { FileRegistrySource, type FileSourceOptions } from './file-source.js';
import type { RegistrySourceError } from './problems.js';
import { RegistryIndex, type ChangeSummary, type RevocationReason } from './registry-index.js';
import type { RegistryEntry } from './model.js';
import type { RegistrySnapshot } from './snapshot.js';
import type { RegistrySource, SourceStats } from './source.js';

export interface RegistryEvents {
  /** A key stopped being valid: abort every session with it (PROTOCOL.md section 6). */
  revoked: [publicKeyB64: string, reason: RevocationReason, previous: RegistryEntry];
  changed: [summary: ChangeSummary];
  /** A snapshot was applied; its `problems` are what to log (safe: no key values). */
  snapshot: [snapshot: RegistrySnapshot];
  /** The source could not produce a snapshot; the one in force stays. */
  error: [error: RegistrySourceError];
}

export interface RegistryStats extends SourceStats {
  /** Entries indexed, revoked ones included. */
  readonly entries: number;
  /** Snapshots applied to the index. */
  readonly version: number;
  /** `revoked` events emitted so far. */
  readonly revocations: number;
  /** Errors and warnings in the snapshot in force. */
  readonly problems: number;
}

export class Registry {
  readonly index: RegistryIndex;
  readonly source: RegistrySource;
  readonly #events = new Emitter<RegistryEvents>();
  readonly #unsubscribe: (() => void)[] = [];
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;
  #rejectReady!: (err: Error) => void;
  #isReady = false;
  #started = false;

  constructor(source: RegistrySource, index: RegistryIndex = new RegistryIndex()) {
    this.source = source;
    this.index = index;
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // A ready() nobody awaits must not become an unhandled rejection on stop().
    this.#ready.catch(() => {});
  }

  /** A registry over a YAML file, reloaded on change; call start(). */
  static fromFile(file: string, options?: FileSourceOptions): Registry {
    return new Registry(new FileRegistrySource(file, options));
  }

  /** Starts the source. Idempotent. */
  start(): this {
    if (this.#started) return this;
    this.#started = true;
    this.#unsubscribe.push(
      this.index.on('revoked', (key, reason, previous) => this.#events.emit('revoked', key, reason, previous)),
      this.index.on('changed', (summary) => this.#events.emit('changed', summary)),
      this.source.on('snapshot', (snapshot) => {
        try {
          this.index.replace(snapshot);
        } finally {
          if (!this.#isReady) {
            this.#isReady = true;
            this.#resolveReady();
          }
          this.#events.emit('snapshot', snapshot);
        }
      }),
      this.source.on('error', (error) => this.#events.emit('error', error)),
    );
    this.source.start();
    return this;
  }

  /** Resolves once the first snapshot is in the index; rejects if stopped before that. */
  ready(): Promise<void> {
    return this.#ready;
  }

  get isReady(): boolean {
    return this.#isReady;
  }

  async stop(): Promise<void> {
    await this.source.stop();
    for (const off of this.#unsubscribe.splice(0)) off();
    if (!this.#isReady) this.#rejectReady(new Error(`registry stopped before its first snapshot (${this.source.origin})`));
  }

  on<K extends keyof RegistryEvents>(event: K, listener: Listener<RegistryEvents[K]>): () => void {
    return this.#events.on(event, listener);
  }

  off<K extends keyof RegistryEvents>(event: K, listener: Listener<RegistryEvents[K]>): void {
    this.#events.off(event, listener);
  }

  stats(): RegistryStats {
    return {
      ...this.source.stats(),
      entries: this.index.size,
      version: this.index.version,
      revocations: this.index.revocations,
      problems: this.index.snapshot?.problems.length ?? 0,
    };
  }
}
