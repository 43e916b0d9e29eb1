/**
 * Projection in the sidecar (DESIGN.md, Secret fetch; docs/gateway.md, Projection): fetches
 * the configured secrets from the gateway through the mesh and keeps them as files in a
 * directory (AtomicWriter), with `secrets.env` for the shell, refreshed on a jittered
 * interval. `noisemesh proxy` runs `start()`: not ready until the first refresh succeeds,
 * retrying with backoff; after that it keeps the last good files through any failure.
 * `noisemesh secrets fetch` runs `refreshOnce()` and exits. Both are this one code path.
 *
 * What each item writes:
 * - `file` without `key`: the secret's whole data as a JSON object and a newline;
 * - `file` with `key`: that key's value, byte for byte (UTF-8), nothing added;
 * - `env` (with `key`, required): `NAME='value'` in `secrets.env` (env-file.ts).
 * `secrets.env` is always written, with only its comment line when no item has `env`.
 *
 * A version swap that replaces an earlier one (on disk before this process, or written by
 * it) notifies the application when `notify` is set. No value reaches a log line, an error
 * message, a metric or /readyz: they name paths, files, keys and the gateway's reasons.
 */
import type { Registry as MetricsRegistry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import type { SecretsLog } from '../log.js';
import { AtomicWriter, ProjectionWriteError } from './atomic-writer.js';
import { renderEnvFile, unwritableValue } from './env-file.js';
import { fetchSecret, type FetchOutcome, type MeshDialer } from './gateway-client.js';
import { notifyApplication, type NotifyConfig } from './notify.js';

export const ENV_FILE = 'secrets.env';

export interface ProjectionItem {
  /** The secret path the gateway is asked for. */
  readonly path: string;
  /** A plain file name in `dir`; null: none. */
  readonly file: string | null;
  /** A shell variable name in secrets.env; null: none. Requires `key`. */
  readonly env: string | null;
  /** One key of the secret's data; null: the whole data (files only). */
  readonly key: string | null;
}

export interface ProjectionConfig {
  readonly gateway: { readonly peer: string; readonly port: number };
  readonly dir: string;
  readonly refreshSeconds: number;
  readonly items: readonly ProjectionItem[];
  readonly notify: NotifyConfig | null;
  readonly fileMode: number;
  readonly dirMode: number;
}

/** The closed set of `noisemesh_secrets_projection_refreshes_total{result}`. */
export const REFRESH_RESULTS = ['changed', 'unchanged', 'unreachable', 'denied', 'not-found', 'invalid', 'write-failed'] as const;
export type RefreshResult = (typeof REFRESH_RESULTS)[number];

export type RefreshOutcome =
  | { readonly ok: true; readonly result: 'changed' | 'unchanged' }
  | { readonly ok: false; readonly result: Exclude<RefreshResult, 'changed' | 'unchanged'>; readonly message: string };

/** Backoff while failing: doubles from the first, capped at min(this, refreshSeconds). */
export const RETRY = { firstMs: 500, maxMs: 30_000 } as const;
/** A refresh interval is spread by this fraction either way, so pods started together do not fetch together. */
export const JITTER = 0.1;

export interface ProjectorOptions {
  readonly config: ProjectionConfig;
  readonly dial: MeshDialer;
  readonly log: SecretsLog;
  /** Where the projection's metrics are registered (the proxy's registry); absent: none. */
  readonly metrics?: MetricsRegistry;
  /** Told every time readiness or the reason changes. */
  readonly onState?: (state: ProjectionState) => void;
  readonly random?: () => number;
}

export interface ProjectionState {
  readonly ready: boolean;
  /** Why not ready: the failing items and the gateway's reasons. */
  readonly reason?: string;
}

export class SecretsProjector {
  readonly writer: AtomicWriter;
  private lastSuccessAt: number | undefined;
  private lastFailure: string | undefined;
  private ready = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly refreshes: Counter<'result'> | undefined;
  private readonly notifications: Counter<'result'> | undefined;
  private readonly random: () => number;

  constructor(private readonly o: ProjectorOptions) {
    this.writer = new AtomicWriter(o.config.dir, { dirMode: o.config.dirMode, fileMode: o.config.fileMode });
    this.random = o.random ?? Math.random;
    if (o.metrics !== undefined) {
      const registers = [o.metrics];
      this.refreshes = new Counter({
        name: 'noisemesh_secrets_projection_refreshes_total',
        help: 'Refreshes of the projected secrets by result: changed (swapped), unchanged, or why the last good files stayed',
        labelNames: ['result'],
        registers,
      });
      for (const result of REFRESH_RESULTS) this.refreshes.inc({ result }, 0);
      this.notifications = new Counter({
        name: 'noisemesh_secrets_projection_notifications_total',
        help: 'Signals sent to the application after a swap (sent), or not (failed: no pid file, no such process, ...)',
        labelNames: ['result'],
        registers,
      });
      this.notifications.inc({ result: 'sent' }, 0);
      this.notifications.inc({ result: 'failed' }, 0);
      const self = this;
      new Gauge({
        name: 'noisemesh_secrets_projection_age_seconds',
        help: 'Seconds since the projected files were last confirmed current by the gateway; -1 before the first success',
        registers,
        collect() {
          this.set(self.lastSuccessAt === undefined ? -1 : (Date.now() - self.lastSuccessAt) / 1000);
        },
      });
    }
  }

  /** For /readyz's body: never a value. */
  details(): Record<string, unknown> {
    return {
      dir: this.o.config.dir,
      items: this.o.config.items.length,
      lastSuccessAt: this.lastSuccessAt === undefined ? null : new Date(this.lastSuccessAt).toISOString(),
      ageSeconds: this.lastSuccessAt === undefined ? null : Math.round((Date.now() - this.lastSuccessAt) / 1000),
      ...(this.lastFailure !== undefined && { lastError: this.lastFailure }),
    };
  }

  /**
   * Fetches every item, renders the files and swaps them in if they differ from what the
   * directory holds. Never throws: a failure is the outcome, with one line naming the item.
   */
  async refreshOnce(): Promise<RefreshOutcome> {
    const outcome = await this.attempt();
    this.refreshes?.inc({ result: outcome.result });
    if (outcome.ok) {
      this.lastSuccessAt = Date.now();
      this.lastFailure = undefined;
    } else {
      this.lastFailure = outcome.message;
    }
    return outcome;
  }

  /** The sidecar's loop: the first refresh now, retried with backoff until it succeeds. */
  start(): void {
    this.publish();
    let failures = 0;
    const cycle = async (): Promise<void> => {
      const outcome = await this.refreshOnce();
      if (this.stopped) return;
      let delayMs: number;
      if (outcome.ok) {
        failures = 0;
        delayMs = this.jittered(this.o.config.refreshSeconds * 1000);
        if (!this.ready) {
          this.ready = true;
          this.o.log.info({ event: 'secrets-projection', result: outcome.result, dir: this.o.config.dir, items: this.o.config.items.length }, 'secrets projected: ready');
        } else if (outcome.result === 'changed') {
          this.o.log.info({ event: 'secrets-projection', result: outcome.result, dir: this.o.config.dir }, 'secrets changed: new version swapped in');
        }
      } else {
        const capMs = Math.min(RETRY.maxMs, this.o.config.refreshSeconds * 1000);
        delayMs = this.jittered(Math.min(capMs, RETRY.firstMs * 2 ** Math.min(failures, 20)));
        failures++;
        const retry = `retrying in ${(delayMs / 1000).toFixed(1)} s`;
        const fields = { event: 'secrets-projection', result: outcome.result, error: outcome.message, retryInSeconds: Math.round(delayMs / 100) / 10 };
        if (this.ready) this.o.log.warn(fields, `secrets not refreshed; the last good files stay (${retry})`);
        else this.o.log.warn(fields, `secrets not projected yet: not ready (${retry})`);
        this.lastFailure = `${outcome.message}; ${retry}`;
      }
      this.publish();
      this.timer = setTimeout(() => (this.running = cycle()), delayMs);
      this.timer.unref();
    };
    this.running = cycle();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running;
  }

  private publish(): void {
    this.o.onState?.(this.ready ? { ready: true } : { ready: false, reason: this.lastFailure ?? 'fetching the secrets from the gateway' });
  }

  private jittered(ms: number): number {
    return Math.max(1, Math.round(ms * (1 - JITTER + 2 * JITTER * this.random())));
  }

  private async attempt(): Promise<RefreshOutcome> {
    const { config, dial } = this.o;
    const paths = [...new Set(config.items.map((i) => i.path))];
    const fetched = new Map<string, FetchOutcome>();
    // One at a time: a pod has a handful of items, and the gateway sees one caller's load.
    for (const path of paths) fetched.set(path, await fetchSecret(dial, config.gateway.peer, config.gateway.port, path));
    const failed = [...fetched].filter(([, f]) => f.kind !== 'ok') as [string, Exclude<FetchOutcome, { kind: 'ok' }>][];
    if (failed.length > 0) {
      const first = failed[0]![1];
      const items = failed.map(([path]) => path).join(', ');
      return { ok: false, result: first.kind, message: `${items}: ${failed.map(([, f]) => f.message).join('; ')}` };
    }
    const files = new Map<string, Buffer>();
    const env: [string, string][] = [];
    for (const [i, item] of config.items.entries()) {
      const secret = fetched.get(item.path) as Extract<FetchOutcome, { kind: 'ok' }>;
      const where = `secrets.project.items[${i}] (${item.path})`;
      let value: string;
      if (item.key === null) {
        value = `${JSON.stringify(secret.data)}\n`;
      } else {
        if (!Object.hasOwn(secret.data, item.key)) {
          const keys = Object.keys(secret.data).slice(0, 20).map((k) => JSON.stringify(k)).join(', ');
          return { ok: false, result: 'invalid', message: `${where}: the secret has no key ${JSON.stringify(item.key)} (its keys: ${keys || 'none'}); fix key` };
        }
        value = secret.data[item.key]!;
      }
      // Each target's own limit, named: a NUL fits a file but no environment variable.
      const what = `the value of ${item.key === null ? 'the secret' : JSON.stringify(item.key)}`;
      const unwritable = (item.env !== null ? unwritableValue(value, 'env') : undefined) ?? (item.file !== null ? unwritableValue(value, 'file') : undefined);
      if (unwritable !== undefined) {
        const target = item.env !== null && unwritableValue(value, 'file') === undefined ? ` (for env ${item.env})` : '';
        return { ok: false, result: 'invalid', message: `${where}: ${what} ${unwritable}${target}` };
      }
      if (item.file !== null) files.set(item.file, Buffer.from(value, 'utf8'));
      if (item.env !== null) env.push([item.env, value]);
    }
    files.set(ENV_FILE, Buffer.from(renderEnvFile(env), 'utf8'));
    try {
      if (await this.writer.holds(files)) return { ok: true, result: 'unchanged' };
      const replacing = await this.writer.hasVersion();
      await this.writer.write(files);
      if (replacing && config.notify !== null) await this.notify(config.notify);
      return { ok: true, result: 'changed' };
    } catch (err) {
      if (err instanceof ProjectionWriteError) return { ok: false, result: 'write-failed', message: `${config.dir}: ${err.message}` };
      throw err;
    }
  }

  private async notify(notify: NotifyConfig): Promise<void> {
    try {
      const pid = await notifyApplication(notify);
      this.notifications?.inc({ result: 'sent' });
      this.o.log.info({ event: 'secrets-notify', signal: notify.signal, pid }, `secrets changed: sent ${notify.signal} to the application`);
    } catch (err) {
      this.notifications?.inc({ result: 'failed' });
      this.o.log.warn({ event: 'secrets-notify', signal: notify.signal, error: (err as Error).message }, 'secrets changed but the application was not signalled');
    }
  }
}
