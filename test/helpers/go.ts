// Builds the small Go programs that tests hold noisemesh against (test/interop/*), offline:
// GOPATH mode over Debian's packaged Go sources, no module proxy, a private build cache.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { isExecutable } from './executable.js';

/** What a machine needs for the Go-based tests; CI installs it in .ci/run. */
export const GO_PACKAGES_HINT =
  'install the Debian packages golang-1.19-go and golang-github-flynn-noise-dev (apt-get install -y golang-1.19-go golang-github-flynn-noise-dev), as .ci/run does';

/** Where Debian's golang-*-dev packages put their sources. */
const DEBIAN_GOPATH = '/usr/share/gocode';


/**
 * The `go` binary: $GO if set, else the first `go` on PATH, else Debian's versioned install
 * (golang-1.19-go puts it in /usr/lib/go-1.19/bin and only golang-go adds it to PATH).
 * Throws, naming what it looked at and how to install it, when there is none.
 */
export function findGo(): string {
  const explicit = process.env.GO;
  if (explicit !== undefined && explicit !== '') {
    if (isExecutable(explicit)) return explicit;
    throw new Error(`$GO is '${explicit}', which is not an executable file: unset it or point it at a go binary`);
  }
  const candidates = [
    ...(process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '').map((dir) => join(dir, 'go')),
    '/usr/lib/go-1.19/bin/go',
    '/usr/lib/go/bin/go',
    '/usr/local/go/bin/go',
  ];
  const found = candidates.find(isExecutable);
  if (found === undefined) {
    throw new Error(`the Go toolchain is missing (no go on PATH, in /usr/lib/go-1.19/bin, /usr/lib/go/bin or /usr/local/go/bin): ${GO_PACKAGES_HINT}`);
  }
  return found;
}

/** The GOPATH entry (from $GOPATH, then Debian's /usr/share/gocode) that holds `importPath`. */
export function findGopathWith(importPath: string): string {
  const candidates = [...(process.env.GOPATH ?? '').split(delimiter).filter((dir) => dir !== ''), DEBIAN_GOPATH];
  const found = candidates.find((dir) => existsSync(join(dir, 'src', importPath)));
  if (found === undefined) {
    throw new Error(`the Go package ${importPath} is missing (looked in ${candidates.map((d) => join(d, 'src')).join(', ')}): ${GO_PACKAGES_HINT}`);
  }
  return found;
}

export interface GoBuild {
  /** The directory of the program's package main. */
  readonly sourceDir: string;
  /** Path of the binary to write. */
  readonly output: string;
  /** GOPATH in which the program's imports resolve. */
  readonly gopath: string;
  /** A scratch directory for the build cache; the caller removes it. */
  readonly cacheDir: string;
  /** Bound on the whole build; the compiler is killed past it. */
  readonly timeoutMs: number;
}

/**
 * `go build` in GOPATH mode with nothing from the caller's Go environment (GOFLAGS, go.env,
 * module settings) leaking in. Rejects with the compiler's output when the build fails.
 */
export async function buildGoProgram(build: GoBuild): Promise<void> {
  const go = findGo();
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: build.cacheDir,
    GOENV: 'off',
    GO111MODULE: 'off',
    GOFLAGS: '',
    GOPATH: build.gopath,
    GOCACHE: join(build.cacheDir, 'go-build'),
    GOTMPDIR: '',
  };
  await new Promise<void>((resolve, reject) => {
    execFile(
      go,
      ['build', '-o', build.output, '.'],
      { cwd: build.sourceDir, env, timeout: build.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) return resolve();
        const why = error.killed ? `was killed after ${build.timeoutMs} ms` : `failed (${error.message.split('\n')[0]})`;
        reject(new Error(`go build of ${build.sourceDir} ${why}:\n${stdout}${stderr}`));
      },
    );
  });
}
