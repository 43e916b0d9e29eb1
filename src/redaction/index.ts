/**
 * redaction: text from outside (a server's error message) made safe to log, without any
 * piece of the credentials we sent. A leaf: imports nothing of the project, so that
 * kubernetes and secrets can both use it.
 */
export { MAX_CHARS, MIN_PIECE, safeServerText } from './server-text.js';
