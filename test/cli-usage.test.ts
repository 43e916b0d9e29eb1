// The noisemesh command line as a new user meets it: help and version, and every mistake a
// user can make (an unknown command or option, a missing value, a file that is missing,
// unreadable or a directory, a key file in the way) answered by one line that names it and
// a non-zero exit, never a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commands } from '../src/cli/commands/index.js';
import { repoRoot } from './helpers/paths.js';

const CLI = join(repoRoot, 'dist/src/cli/main.js');
const NOBODY = 65534;

function run(args: readonly string[], options: { asNobody?: boolean } = {}): SpawnSyncReturns<string> {
  const argv = [process.execPath, CLI, ...args];
  if (options.asNobody === true && process.getuid?.() === 0) {
    // Root reads every file: the unreadable case runs as nobody, as a user without the right would.
    const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', ...argv], { encoding: 'utf8', timeout: 30_000 });
    if (r.error !== undefined) throw new Error(`setpriv could not run (${r.error.message}): install it (Debian: apt-get install -y util-linux), as .ci/run does`);
    return r;
  }
  return spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
}

/** No frame of a stack, in any output. */
function assertNoStack(r: SpawnSyncReturns<string>, what: string): void {
  for (const text of [r.stdout, r.stderr]) {
    assert.doesNotMatch(text, /^\s+at /m, `${what}: a stack frame\n${text}`);
    assert.doesNotMatch(text, /node:internal|\.js:\d+:\d+/, `${what}: a source location\n${text}`);
  }
}

const usageOf = async (name: string): Promise<string> => (await commands[name]!.load()).usage;

test('--help, -h and help print the overview on stdout and exit 0; --version prints the version', () => {
  for (const args of [['--help'], ['-h'], ['help']]) {
    const r = run(args);
    assert.equal(r.status, 0, args.join(' '));
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^usage: noisemesh <command> \[options\]\n/);
    for (const name of Object.keys(commands)) assert.match(r.stdout, new RegExp(`^  ${name} +\\S`, 'm'), name);
  }
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  for (const flag of ['--version', '-V']) {
    const r = run([flag]);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, `noisemesh ${version}\n`);
  }
});

test('help <command> and <command> --help print that command\'s usage and exit 0', async () => {
  for (const name of Object.keys(commands)) {
    const usage = await usageOf(name);
    assert.match(usage, new RegExp(`^usage: noisemesh ${name}\\b`), name);
    const sub = name === 'registry' ? ['validate'] : [];
    for (const args of [['help', name], [name, ...sub, '--help'], [name, '-h']]) {
      const r = run(args);
      assert.equal(r.status, 0, args.join(' '));
      assert.equal(r.stdout, usage, args.join(' '));
      assert.equal(r.stderr, '');
    }
  }
});

test('an unknown command or option is one line naming it, then the usage, exit 2', async () => {
  const cases: [string[], string, string][] = [
    [['frobnicate'], "noisemesh: unknown command 'frobnicate'", 'usage: noisemesh <command>'],
    [['--frobnicate'], "noisemesh: unknown option '--frobnicate'", 'usage: noisemesh <command>'],
    [['help', 'frobnicate'], "noisemesh: unknown command 'frobnicate'", 'usage: noisemesh <command>'],
  ];
  for (const name of Object.keys(commands)) {
    const sub = name === 'registry' ? ['validate'] : [];
    cases.push([[name, ...sub, '--frobnicate'], `noisemesh ${name}: unknown option '--frobnicate'`, await usageOf(name)]);
  }
  for (const [args, line, usage] of cases) {
    const r = run(args);
    assert.equal(r.status, 2, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
    const [first, blank, ...rest] = r.stderr.split('\n');
    assert.equal(first, line);
    assert.equal(blank, '');
    assert.ok(rest.join('\n').startsWith(usage.split('\n')[0]!), `${args.join(' ')}: the usage follows\n${r.stderr}`);
    assertNoStack(r, args.join(' '));
  }
});

test('every command with bad arguments: one clear line, a non-zero exit, no stack trace', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'noisemesh-usage-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'missing.yaml');
  const unreadable = join(dir, 'unreadable.yaml');
  writeFileSync(unreadable, 'a: 1\n', { mode: 0o000 });
  const existingKey = join(dir, 'existing.key');
  writeFileSync(existingKey, 'not a key, and not to be overwritten\n', { mode: 0o600 });
  const sub = join(dir, 'sub');
  mkdirSync(sub, { mode: 0o555 }); // not writable: keygen --out into it is refused
  const fifo = join(dir, 'fifo');
  const made = spawnSync('mkfifo', [fifo]);
  assert.equal(made.status, 0, `mkfifo could not run: install it (Debian: apt-get install -y coreutils)`);
  const link = join(dir, 'link');
  symlinkSync(existingKey, link);
  const latin1 = join(dir, 'latin1.yaml');
  writeFileSync(latin1, Buffer.from('apiVersion: noisemesh.io/v1alpha1 # caf\xe9\n', 'latin1'));
  const keyFile = join(dir, 'real.key');
  const keygen = run(['keygen', '--out', keyFile]);
  assert.equal(keygen.status, 0, keygen.stderr);
  const privateKey = readFileSync(keyFile, 'utf8').trim();
  const jsonNull = join(dir, 'null.json');
  writeFileSync(jsonNull, 'null\n');
  const jsonList = join(dir, 'list.json');
  writeFileSync(jsonList, '[]\n');

  interface Case {
    readonly args: string[];
    /** The line, on stderr unless `stdout`. */
    readonly line: RegExp;
    readonly exit: number;
    /** The line is followed by the usage (command-line mistakes that parseArgs finds). */
    readonly usage?: boolean;
    readonly stdout?: boolean;
    readonly asNobody?: boolean;
  }
  // Per command; every command the dispatcher knows must have its cases here.
  const cases: Record<string, Case[]> = {
    demo: [
      { args: ['demo', '--requests'], line: /^noisemesh demo: option --requests needs a value$/, exit: 2, usage: true },
      { args: ['demo', '--requests', 'many'], line: /^noisemesh demo: --requests must be a whole number from 1 to 1000; got "many"$/, exit: 2 },
      { args: ['demo', '--serve=yes'], line: /^noisemesh demo: option --serve takes no value$/, exit: 2, usage: true },
      { args: ['demo', 'now'], line: /^noisemesh demo: unexpected argument 'now'$/, exit: 2, usage: true },
    ],
    explain: [
      { args: ['explain', '--policy'], line: /^noisemesh explain: option --policy needs a value$/, exit: 2, usage: true },
      { args: ['explain', '--policy', missing, '--registry', missing, 'a/b', 'p'], line: /^noisemesh explain: --policy: .*missing\.yaml does not exist: create it, or fix --policy$/, exit: 2 },
      { args: ['explain', '--policy', dir, '--registry', missing, 'a/b', 'p'], line: /^noisemesh explain: --policy: .* is a directory, not a regular file: point --policy at a regular file \(a symlink to one is fine\)$/, exit: 2 },
      { args: ['explain', '--policy', unreadable, '--registry', missing, 'a/b', 'p'], line: /^noisemesh explain: --policy: .*unreadable\.yaml cannot be read: permission denied: make it readable by the user noisemesh runs as$/, exit: 2, asNobody: true },
    ],
    'init-iptables': [
      { args: ['init-iptables', '--proxy-uid'], line: /^noisemesh init-iptables: option --proxy-uid needs a value$/, exit: 2, usage: true },
      { args: ['init-iptables', '--dry-run', '--mesh-port', 'x'], line: /^noisemesh init-iptables: --mesh-port: 'x' is not a whole number$/, exit: 2 },
    ],
    keygen: [
      { args: ['keygen', '--out'], line: /^noisemesh keygen: option --out needs a value$/, exit: 2, usage: true },
      { args: ['keygen', '--out', existingKey], line: /^noisemesh keygen: --out .*existing\.key already exists: refusing to overwrite a key; add --force to replace it$/, exit: 2 },
      { args: ['keygen', '--out', join(dir, 'no', 'such', 'dir', 'key')], line: /^noisemesh keygen: cannot open .*\/no\/such\/dir\/key: no such file or directory \(ENOENT\): check the path \(does its directory exist\?\)$/, exit: 1 },
      { args: ['keygen', '--out', sub], line: /^noisemesh keygen: --out .*\/sub is a directory: name the file to write, e\.g\. --out .*\/sub\/key$/, exit: 2 },
      { args: ['keygen', '--out', join(sub, 'key')], line: /^noisemesh keygen: cannot (open|look at) .*\/sub\/key: permission denied \(EACCES\): check its owner and mode$/, exit: 1, asNobody: true },
      { args: ['keygen', '--force'], line: /^noisemesh keygen: --force only applies to --out FILE$/, exit: 2 },
      { args: ['keygen', '--out', ''], line: /^noisemesh keygen: --out needs a file name, e\.g\. --out \.\/key$/, exit: 2 },
      // --force renames a new file over FILE: over a FIFO, a device or a symlink that would
      // replace the node itself (as root, /dev/null), so only a regular file is ever replaced.
      { args: ['keygen', '--out', fifo], line: /^noisemesh keygen: --out .*\/fifo is a FIFO \(named pipe\), not a regular file: keygen writes and replaces only regular files; name a new file$/, exit: 2 },
      { args: ['keygen', '--out', fifo, '--force'], line: /^noisemesh keygen: --out .*\/fifo is a FIFO \(named pipe\), not a regular file: keygen writes and replaces only regular files; name a new file$/, exit: 2 },
      { args: ['keygen', '--out', link, '--force'], line: /^noisemesh keygen: --out .*\/link is a symbolic link, not a regular file: keygen writes and replaces only regular files; name a new file$/, exit: 2 },
    ],
    gateway: [
      { args: ['gateway'], line: /^noisemesh gateway: --config FILE is required: the YAML configuration \(docs\/configuration\.md\)$/, exit: 2 },
      { args: ['gateway', '--config'], line: /^noisemesh gateway: option --config needs a value$/, exit: 2, usage: true },
      { args: ['gateway', '--config', missing], line: /^noisemesh gateway: --config: .*missing\.yaml does not exist: create it, or fix --config$/, exit: 2 },
      { args: ['gateway', '--config', dir], line: /^noisemesh gateway: --config: .* is a directory, not a regular file: point --config at a regular file \(a symlink to one is fine\)$/, exit: 2 },
    ],
    proxy: [
      { args: ['proxy'], line: /^noisemesh proxy: --config FILE is required: the YAML configuration \(docs\/configuration\.md\)$/, exit: 2 },
      { args: ['proxy', '--config'], line: /^noisemesh proxy: option --config needs a value$/, exit: 2, usage: true },
      { args: ['proxy', '--config', missing], line: /^noisemesh proxy: --config: .*missing\.yaml does not exist: create it, or fix --config$/, exit: 2 },
      { args: ['proxy', '--config', dir], line: /^noisemesh proxy: --config: .* is a directory, not a regular file: point --config at a regular file \(a symlink to one is fine\)$/, exit: 2 },
      { args: ['proxy', '--config', unreadable], line: /^noisemesh proxy: --config: .*unreadable\.yaml cannot be read: permission denied: make it readable by the user noisemesh runs as$/, exit: 2, asNobody: true },
    ],
    registry: [
      { args: ['registry'], line: /^noisemesh registry: name a subcommand; usage: noisemesh registry validate FILE\.\.\. \| registry get \[--kubeconfig FILE\] \[-n NAMESPACE\]\.\.\.$/, exit: 2 },
      { args: ['registry', 'check', 'x.yaml'], line: /^noisemesh registry: unknown subcommand 'check'; usage: noisemesh registry validate FILE\.\.\. \| registry get \[--kubeconfig FILE\] \[-n NAMESPACE\]\.\.\.$/, exit: 2 },
      { args: ['registry', 'get', '--kubeconfig'], line: /^noisemesh registry: option --kubeconfig needs a value$/, exit: 2, usage: true },
      { args: ['registry', 'get', '--kubeconfig', missing], line: /^noisemesh registry: .*missing\.yaml/, exit: 2 },
      // client-node's loadFromFile would block for ever on a FIFO.
      { args: ['registry', 'get', '--kubeconfig', fifo], line: /^noisemesh registry: the kubeconfig .*\/fifo is a FIFO \(named pipe\), not a regular file: name a regular file \(a symlink to one is fine\)$/, exit: 2 },
      { args: ['registry', 'validate'], line: /^noisemesh registry: name at least one file; usage: noisemesh registry validate FILE\.\.\. \| registry get \[--kubeconfig FILE\] \[-n NAMESPACE\]\.\.\.$/, exit: 2 },
      { args: ['registry', 'validate', missing], line: /^.*missing\.yaml does not exist: check the path$/, exit: 1, stdout: true },
      { args: ['registry', 'validate', dir], line: /^.* is a directory, not a regular file: name a regular file \(a symlink to one is fine\)$/, exit: 1, stdout: true },
      { args: ['registry', 'validate', fifo], line: /^.*\/fifo is a FIFO \(named pipe\), not a regular file: name a regular file \(a symlink to one is fine\)$/, exit: 1, stdout: true },
      { args: ['registry', 'validate', unreadable], line: /^.*unreadable\.yaml cannot be read: permission denied: make it readable by the user noisemesh runs as$/, exit: 1, stdout: true, asNobody: true },
      // Not UTF-8: refused as the proxy refuses it, not read with replacement characters.
      { args: ['registry', 'validate', latin1], line: /^.*latin1\.yaml: is not UTF-8 text: save it as UTF-8; the whole file is refused$/, exit: 1, stdout: true },
    ],
    secrets: [
      { args: ['secrets'], line: /^noisemesh secrets: a subcommand is required: fetch$/, exit: 2 },
      { args: ['secrets', 'pull'], line: /^noisemesh secrets: unknown subcommand "pull": the one subcommand is fetch$/, exit: 2 },
      { args: ['secrets', 'fetch'], line: /^noisemesh secrets: --config FILE is required: /, exit: 2 },
      { args: ['secrets', 'fetch', '--config', missing], line: /^noisemesh secrets: --config: .*missing\.yaml does not exist: create it, or fix --config$/, exit: 2 },
      { args: ['secrets', 'fetch', '--config', missing, '--registry-wait', 'soon'], line: /^noisemesh secrets: --registry-wait must be a number of seconds from 0 to 3600; got "soon"$/, exit: 2 },
    ],
    vectors: [
      { args: ['vectors'], line: /^noisemesh vectors: name at least one vector file$/, exit: 2 },
      { args: ['vectors', '--backend'], line: /^noisemesh vectors: option --backend needs a value$/, exit: 2, usage: true },
      { args: ['vectors', '--backend', 'openssl', missing], line: /^noisemesh vectors: unknown crypto backend 'openssl'/, exit: 2 },
      { args: ['vectors', missing], line: /^noisemesh vectors: .*missing\.yaml does not exist: check the path$/, exit: 2 },
      { args: ['vectors', dir], line: /^noisemesh vectors: .* is a directory, not a regular file: name a regular file \(a symlink to one is fine\)$/, exit: 2 },
      { args: ['vectors', unreadable], line: /^noisemesh vectors: .*unreadable\.yaml cannot be read: permission denied: make it readable by the user noisemesh runs as$/, exit: 2, asNobody: true },
      // A FIFO with no writer, and a device that never ends: refused at once, not a hang.
      { args: ['vectors', fifo], line: /^noisemesh vectors: .*\/fifo is a FIFO \(named pipe\), not a regular file: name a regular file \(a symlink to one is fine\)$/, exit: 2 },
      { args: ['vectors', '/dev/zero'], line: /^noisemesh vectors: \/dev\/zero is a character device, not a regular file: name a regular file \(a symlink to one is fine\)$/, exit: 2 },
      // A key named by mistake: JSON.parse's message would quote the start of it.
      { args: ['vectors', keyFile], line: /^noisemesh vectors: .*real\.key is not valid JSON( \(at character \d+\))?: name a cacophony JSON file, \{"vectors": \[\.\.\.\]\}$/, exit: 2 },
      { args: ['vectors', jsonNull], line: /^noisemesh vectors: .*null\.json holds no "vectors" list: a cacophony file is a JSON object \{"vectors": \[\.\.\.\]\}$/, exit: 2 },
      { args: ['vectors', jsonList], line: /^noisemesh vectors: .*list\.json holds no "vectors" list: a cacophony file is a JSON object \{"vectors": \[\.\.\.\]\}$/, exit: 2 },
    ],
  };
  assert.deepEqual(Object.keys(cases).sort(), Object.keys(commands).sort(), 'every command has its bad-argument cases');

  for (const c of Object.values(cases).flat()) {
    const what = c.args.join(' ');
    const r = run(c.args, { asNobody: c.asNobody ?? false });
    assertNoStack(r, what);
    for (const part of [privateKey, privateKey.slice(0, 10)]) assert.ok(!(r.stdout + r.stderr).includes(part), `${what}: the key, or a part of it, was echoed`);
    assert.equal(r.status, c.exit, `${what}: exit ${r.status}\n${r.stdout}${r.stderr}`);
    const lines = (c.stdout === true ? r.stdout : r.stderr).split('\n');
    assert.match(lines[0]!, c.line, what);
    if (c.usage === true) {
      assert.equal(lines[1], '', what);
      assert.match(lines[2]!, new RegExp(`^usage: noisemesh ${c.args[0]}\\b`), what);
    } else if (c.stdout === true) {
      // The problem line, then the summary; nothing on stderr.
      assert.equal(r.stderr, '', what);
      assert.match(lines[1]!, /^1 file, 0 documents, 0 peers loaded; 1 error, 0 warnings$/, what);
    } else {
      assert.equal(r.stderr, `${lines[0]}\n`, `${what}: one line only`);
    }
  }
  assert.equal(readFileSync(existingKey, 'utf8'), 'not a key, and not to be overwritten\n', 'keygen left the existing file alone');
  assert.ok(lstatSync(fifo).isFIFO(), 'keygen --force left the FIFO in place');
  assert.ok(lstatSync(link).isSymbolicLink(), 'keygen --force left the symlink in place');
});

test('what the review left: no command, help help, values that start with -, empty list items, namespaces, control characters', () => {
  const none = run([]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /^noisemesh: name a command\n\nusage: noisemesh <command>/);

  const helpHelp = run(['help', 'help']);
  assert.equal(helpHelp.status, 0);
  assert.match(helpHelp.stdout, /^usage: noisemesh <command>/);

  const ambiguous = run(['init-iptables', '--dry-run', '--proxy-uid', '-1']);
  assert.equal(ambiguous.status, 2);
  assert.match(ambiguous.stderr, /^noisemesh init-iptables: option --proxy-uid takes a value that starts with '-': write it as --proxy-uid=VALUE\n/);

  for (const [flag, value] of [['--exclude-outbound-ports', '1,,2'], ['--exclude-outbound-cidrs', '10.0.0.0/8,'], ['--exclude-inbound-ports', ',15020']]) {
    const r = run(['init-iptables', '--dry-run', flag!, value!]);
    assert.equal(r.status, 2, `${flag} ${value}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^noisemesh init-iptables: ${flag} \\(item \\d\\): empty: write the list without empty items, e\\.g\\. 80,443\\n$`));
  }

  const namespace = run(['registry', 'get', '-n', 'BAD NS']);
  assert.equal(namespace.status, 2);
  assert.match(namespace.stderr, /^noisemesh registry: -n: must be a Kubernetes namespace name \(lowercase DNS-1123 label\), e\.g\. payments; got "BAD NS"\n$/);

  // A newline or an escape sequence in what the user typed is echoed escaped: one line, no
  // terminal control.
  const newline = run(['keygen', '--out', '/nonexistent/a\nb']);
  assert.equal(newline.status, 1);
  assert.equal(newline.stderr.split('\n').filter(Boolean).length, 1, newline.stderr);
  assert.match(newline.stderr, /\/nonexistent\/a\\nb/);
  const escape = run(['bad\u001b[31m']);
  assert.equal(escape.status, 2);
  assert.ok(!escape.stderr.includes('\u001b'), 'no raw escape character');
  assert.match(escape.stderr, /^noisemesh: unknown command 'bad\\x1b\[31m'/);
  for (const r of [none, helpHelp, ambiguous, namespace, newline, escape]) assertNoStack(r, 'review leftovers');
});
