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
 * encode).
 */

/** A POSIX shell variable name; also what `env` must match in the configuration. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Why `value` cannot be written as text, or undefined when it can. Never echoes the value. */
export function unwritableValue(value: string): string | undefined {
  if (value.includes('\0')) return 'contains a NUL byte, which no environment variable or C string can hold';
  if (/\p{Surrogate}/u.test(value)) return 'is not well-formed Unicode (a lone surrogate), which UTF-8 cannot encode';
  return undefined;
}

/** `value` as one sh word that expands to exactly `value`. The caller has checked unwritableValue. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The file's text: a comment line, then `NAME='value'` lines in the order given. */
export function renderEnvFile(variables: readonly (readonly [name: string, value: string])[]): string {
  let text = '# written by noisemesh (secrets.project); sh: . ./secrets.env\n';
  for (const [name, value] of variables) text += `${name}=${shellQuote(value)}\n`;
  return text;
}
