/**
 * A small typed listener list. Not EventEmitter: an `error` event without a listener must not
 * throw, and listeners are told of a revocation synchronously, in order, each one even when
 * an earlier one throws.
 */
export type Listener<A extends unknown[]> = (...args: A) => void;

export class Emitter<Events extends { [K in keyof Events]: unknown[] }> {
  readonly #listeners: { [K in keyof Events]?: Listener<Events[K]>[] } = {};

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const list = (this.#listeners[event] ??= []);
    list.push(listener);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const list = this.#listeners[event];
    if (list === undefined) return;
    const i = list.indexOf(listener);
    if (i >= 0) list.splice(i, 1);
  }

  listenerCount<K extends keyof Events>(event: K): number {
    return this.#listeners[event]?.length ?? 0;
  }

  /**
   * Calls every listener of `event` in the order they were added. A listener that throws does
   * not stop the others; the first error is rethrown once all have run.
   */
  emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    const list = this.#listeners[event];
    if (list === undefined || list.length === 0) return;
    let failure: { error: unknown } | undefined;
    // A copy, so that a listener removing itself does not make the loop skip its neighbour.
    for (const listener of list.length === 1 ? list : [...list]) {
      try {
        listener(...args);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure !== undefined) throw failure.error;
  }

  /**
   * `emit` for a source reporting from its own callbacks (a file watcher, a watch stream), where
   * nobody awaits the call: a listener that throws is a bug in the program (a session table that
   * failed to abort), so it surfaces as an uncaught exception on the next tick instead of being
   * lost in the source's I/O handler; the other listeners have all been called.
   */
  deliver<K extends keyof Events>(event: K, ...args: Events[K]): void {
    try {
      this.emit(event, ...args);
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  }

  removeAll(): void {
    for (const key of Object.keys(this.#listeners)) delete this.#listeners[key as keyof Events];
  }
}
