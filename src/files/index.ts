/**
 * files: reading files the proxy does not control (configuration, keys, the registry) without
 * ever blocking on a FIFO or a device, and within a size limit. A leaf: imports nothing of the
 * project, so that cli and registry-sync can both use it.
 */
export {
  FileReadError,
  openRegularFile,
  readOpenedFile,
  readRegularFile,
  readRegularFileSync,
  type FileReadFailure,
  type OpenedFile,
  type ReadLimit,
} from './regular-file.js';
