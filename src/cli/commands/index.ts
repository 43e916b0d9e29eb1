import type { Command } from '../command.js';
import { keygen } from './keygen.js';
import { vectors } from './vectors.js';

export const commands: Readonly<Record<string, Command>> = {
  keygen,
  vectors,
};
