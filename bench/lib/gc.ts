/**
 * A full garbage collection on demand, without asking for `node --expose-gc` (the npm
 * script runs plain `node`). Rounds of different cases are interleaved, and without this
 * one case's garbage is collected in the next case's round and charged to it: a case that
 * follows noble (which allocates heavily) lost up to a fifth of its rate that way.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

export function collectGarbage(): void {
  gc();
}
