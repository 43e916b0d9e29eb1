/**
 * `secrets.env`: one `NAME='value'` line per projected environment variable, for
 * `. /var/run/noisemesh/secrets/secrets.env` in sh (or `set -a; . FILE; set +a` to export).
 *
 * A value is quoted with single quotes, inside which sh gives no character a meaning (no
 * `$`, backquote, backslash or glob expansion); an embedded `'` becomes `'\''` (close the
 * quote, an escaped quote, reopen). So any string round-trips exactly through sh, bash, dash
 * and zsh, newlines included: a value with a newline spans several lines of the file, inside
 * one quoted word. Tools that read such files line by line without a shell (`docker
 * --env-file`, systemd's EnvironmentFile) do not unquote and must not be given one.
 *
 * Two strings no shell variable can hold are refused, never altered: a NUL (C strings end
 * there) and a string that is not well-formed Unicode (a lone surrogate, which UTF-8 cannot
 * encode). A file item takes a NUL (a file holds any bytes), not a lone surrogate.
 */

/** A POSIX shell variable name; also what `env` must match in the configuration. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Variables that change how the shell sourcing secrets.env, or any program it starts, behaves:
 * a secret's value there would choose the programs run (PATH), the code loaded into them
 * (LD_PRELOAD), or how the shell splits and expands words (IFS). `env` may name none of them
 * (docs/configuration.md lists them). Shell: POSIX sh's and bash's special variables, and
 * zsh's lower-case arrays tied to PATH and its kin. Loader: glibc's list of variables it
 * ignores in set-uid programs for this reason (its "unsecure" environment), every `LD_` name
 * included.
 */
export const RESERVED_ENV_NAMES: ReadonlySet<string> = new Set([
  // shell
  'PATH', 'IFS', 'ENV', 'BASH_ENV', 'CDPATH', 'HOME', 'SHELL', 'SHELLOPTS', 'BASHOPTS', 'GLOBIGNORE',
  'PS1', 'PS2', 'PS3', 'PS4', 'PROMPT_COMMAND', 'PWD', 'OLDPWD', 'OPTIND', 'OPTARG', 'MAIL', 'MAILPATH',
  'HISTFILE', 'FPATH', 'ZDOTDIR', 'TMOUT', 'POSIXLY_CORRECT', 'EXECIGNORE', 'INPUTRC',
  'path', 'cdpath', 'fpath', 'mailpath', 'module_path', 'manpath',
  // dynamic loader and C library (besides LD_*)
  'GCONV_PATH', 'GETCONF_DIR', 'GLIBC_TUNABLES', 'HOSTALIASES', 'LOCALDOMAIN', 'LOCPATH', 'MALLOC_TRACE',
  'NIS_PATH', 'NLSPATH', 'RESOLV_HOST_CONF', 'RES_OPTIONS', 'TMPDIR', 'TZDIR',
]);

/** Why `name` may not be a projected variable (RESERVED_ENV_NAMES, or an `LD_` or `BASH_` name), or undefined. */
export function reservedEnvName(name: string): string | undefined {
  if (name.startsWith('LD_')) return 'is read by the dynamic loader (every LD_ variable is), so a secret there would choose code loaded into every program the app starts';
  if (name.startsWith('BASH_')) return "is one of bash's own variables, which change how the shell behaves";
  if (RESERVED_ENV_NAMES.has(name)) return 'changes how the shell sourcing secrets.env, or a program it starts, behaves (where it finds programs, how it splits words, what the loader reads)';
  return undefined;
}

/**
 * Why `value` cannot be written as text, or undefined when it can. Never echoes the value.
 * `env`: for a line of secrets.env, which cannot hold a NUL; a file can.
 */
export function unwritableValue(value: string, target: 'env' | 'file'): string | undefined {
  if (target === 'env' && value.includes('\0')) return 'contains a NUL byte, which no environment variable can hold (a C string ends there)';
  if (/\p{Surrogate}/u.test(value)) return 'is not well-formed Unicode (a lone surrogate), which UTF-8 cannot encode';
  return undefined;
}

/** `value` as one sh word that expands to exactly `value`. The caller has checked unwritableValue(value, 'env'). */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The file's text: a comment line, then `NAME='value'` lines in the order given. */
export function renderEnvFile(variables: readonly (readonly [name: string, value: string])[]): string {
  let text = '# written by noisemesh (secrets.project); sh: . ./secrets.env\n';
  for (const [name, value] of variables) text += `${name}=${shellQuote(value)}\n`;
  return text;
}
