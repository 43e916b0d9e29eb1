/**
 * Errors a user's environment causes (a file that is missing, a directory where a file was
 * expected, a port in use), turned into one line that says what happened, where, and how to
 * fix it: such an error is the user's to fix, not a bug, so it never shows a stack.
 */

/** Words for the errno codes a command line meets; the code itself follows in brackets. */
const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'it is a directory, not a file',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'it already exists',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the name is too long',
  EMFILE: 'too many open files',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this host',
};

/** The failed call, as a verb a user reads: `cannot look at FILE` rather than `cannot lstat FILE`. */
const SYSCALL_VERB: Readonly<Record<string, string>> = {
  stat: 'look at',
  lstat: 'look at',
  fstat: 'look at',
  access: 'access',
  scandir: 'list',
  mkdir: 'create the directory',
  unlink: 'remove',
  rmdir: 'remove',
  listen: 'listen on',
  bind: 'listen on',
  connect: 'connect to',
};

/** A Node system error: an errno `code` and the call that failed (`open`, `listen`, ...). */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException & { code: string; syscall: string } {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && /^E[A-Z0-9]+$/.test((err as NodeJS.ErrnoException).code!) && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/** `no such file or directory (ENOENT)`; the code alone for an errno we have no words for. */
export function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === undefined) return (err as Error | undefined)?.message ?? 'unknown error';
  const text = ERRNO_TEXT[code];
  return text === undefined ? code : `${text} (${code})`;
}

/** What to do about it, when there is one thing to do. */
function fixFor(err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOENT' && /^(open|mkdir|rename|link|symlink|copyfile)$/.test(err.syscall ?? '') && err.path !== undefined) return ': check the path (does its directory exist?)';
  if (err.code === 'EACCES' || err.code === 'EPERM') return ': check its owner and mode';
  return '';
}

/** One line for a system error: `cannot open /x/key: no such file or directory (ENOENT): ...`. */
export function systemErrorLine(err: NodeJS.ErrnoException & { syscall: string }): string {
  const where = err.path !== undefined ? ` ${err.path}` : (err as { address?: string }).address !== undefined ? ` ${(err as { address?: string }).address}:${(err as { port?: number }).port ?? ''}` : '';
  return `cannot ${SYSCALL_VERB[err.syscall] ?? err.syscall}${where}: ${errnoText(err)}${fixFor(err)}`;
}
