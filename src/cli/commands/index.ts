import type { Command } from '../command.js';
import { demo } from './demo.js';
import { initIptables } from './init-iptables.js';
import { keygen } from './keygen.js';
import { proxy } from './proxy.js';
import { registry } from './registry.js';
import { vectors } from './vectors.js';

export const commands: Readonly<Record<string, Command>> = {
  demo,
  'init-iptables': initIptables,
  keygen,
  proxy,
  registry,
  vectors,
};
