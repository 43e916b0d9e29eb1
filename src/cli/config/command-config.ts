/**
 * A command's `--config FILE`, read by one of the configuration loaders: what it refuses (a
 * wrong key or value, a file that cannot be read) becomes the command's one-line UsageError
 * (exit 2), the same for every command that takes a configuration.
 */
import { FileReadError } from '../../files/index.js';
import { UsageError } from '../usage-error.js';
import { ConfigError } from './config-reader.js';

/** `load(file)`, with its ConfigError and FileReadError as UsageError; anything else is a bug and passes through. */
export async function loadCommandConfig<T>(load: (file: string) => T | Promise<T>, file: string): Promise<T> {
  try {
    return await load(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`configuration refused: ${err.message}`);
    if (err instanceof FileReadError) throw new UsageError(err.explain('--config'));
    throw err;
  }
}
