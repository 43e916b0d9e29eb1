// The repository explains itself: its documents agree with the references and the code they
// describe, and every link in them resolves inside the repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { acceptedConfigKeys } from '../src/cli/config/proxy-config.js';
import { acceptedGatewayConfigKeys } from '../src/cli/config/gateway-config.js';
import { repoRoot, sharedPath } from './helpers/paths.js';

/** The documents we write (docs/reference/ holds upstream text, carried verbatim). */
const OWN_DOCS = ['README.md', 'docs/architecture.md', 'docs/configuration.md', 'docs/protocol.md', 'docs/gateway.md', 'docs/policy.md', 'examples/README.md', 'bench/README.md', 'src/registry-sync/README.md'];

const read = (path: string): string => readFileSync(join(repoRoot, path), 'utf8');

/** Where a copy first differs from its reference, as a line number and both lines. */
function firstDifference(copy: string, reference: string): string {
  const a = copy.split('\n');
  const b = reference.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `line ${i + 1}:\n  repository: ${JSON.stringify(a[i])}\n  reference:  ${JSON.stringify(b[i])}`;
  }
  return 'a difference in bytes, not in lines';
}

function assertCopy(copyPath: string, referenceRelative: string): void {
  const reference = sharedPath(referenceRelative);
  assert.ok(
    existsSync(reference),
    `${reference} is missing: this test holds ${copyPath} to it. Put the shared references beside the clone (../shared, as CI has them) or set NOISEMESH_SHARED to their directory`,
  );
  const copy = readFileSync(join(repoRoot, copyPath));
  const original = readFileSync(reference);
  assert.ok(
    copy.equals(original),
    `${copyPath} has drifted from ${reference}, which is the reference: copy it again (cp ${reference} ${copyPath}); first difference at ${firstDifference(copy.toString('utf8'), original.toString('utf8'))}`,
  );
}

test('docs/protocol.md is PROTOCOL.md byte for byte, and the Noise specification it cites is carried beside it', () => {
  assertCopy('docs/protocol.md', 'PROTOCOL.md');
  assertCopy('docs/reference/noise-spec-rev34.md', 'reference/noise-spec-rev34.md');
  // Its references to files (`reference/...md`) resolve from docs/, where it lives.
  const cited = [...read('docs/protocol.md').matchAll(/`([\w./-]+\.md)`/g)].map((m) => m[1]!);
  assert.ok(cited.length > 0);
  for (const file of cited) assert.ok(existsSync(join(repoRoot, 'docs', file)), `docs/protocol.md cites ${file}, which is not at docs/${file}`);
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

function anchorsOf(markdown: string): Set<string> {
  const withoutCode = markdown.replace(/```[^]*?```/g, '');
  return new Set([...withoutCode.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => anchorOf(m[1]!)));
}

test('every link in our documents resolves inside the repository; none leads to ../shared', () => {
  for (const doc of OWN_DOCS) {
    const text = read(doc).replace(/```[^]*?```/g, '');
    assert.doesNotMatch(text, /\.\.\/shared/, `${doc} points at ../shared, which a clone does not have`);
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/.test(target)) continue; // https: and the like: outside, on purpose
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path === '' ? join(repoRoot, doc) : resolve(repoRoot, dirname(doc), path);
      assert.ok(!relative(repoRoot, file).startsWith('..'), `${doc}: ${target} leaves the repository`);
      assert.ok(existsSync(file), `${doc}: ${target} does not exist`);
      if (anchor !== undefined && statSync(file).isFile()) {
        assert.ok(anchorsOf(readFileSync(file, 'utf8')).has(anchor), `${doc}: ${target}: no heading with anchor #${anchor}`);
      }
    }
  }
});

test('docs/configuration.md documents every key the proxy and gateway configuration readers accept', async () => {
  const keys = await acceptedConfigKeys();
  // The reader's own list, so that a key added to the code and not to the page fails here.
  assert.ok(keys.includes('identity.agentId') && keys.includes('outbound.explicit[].peer') && keys.length >= 30, keys.join(' '));
  const page = read('docs/configuration.md');
  const rows = new Set([...page.matchAll(/^\| `([a-z][^`]*)` \|/gm)].map((m) => m[1]!)); // environment variables are upper case
  // The gateway reads every key of the proxy and its own section.
  const gatewayKeys = acceptedGatewayConfigKeys();
  assert.deepEqual(keys.filter((k) => !gatewayKeys.includes(k)), [], 'the gateway accepts every proxy key');
  // Every backend's keys and the cache's: the reader visits each shape (acceptedGatewayConfigKeys).
  for (const key of ['gateway.backend.file', 'gateway.audit.stdout', 'gateway.backend.vault.auth.token.file', 'gateway.backend.vault.auth.kubernetes.role', 'gateway.backend.kubernetes.namespace', 'gateway.cache.maxStaleSeconds']) {
    assert.ok(gatewayKeys.includes(key), `${key} not among ${gatewayKeys.join(' ')}`);
  }
  const missing = gatewayKeys.filter((k) => !rows.has(k));
  assert.deepEqual(missing, [], `docs/configuration.md has no row for: ${missing.join(', ')}`);
  const unknown = [...rows].filter((k) => !gatewayKeys.includes(k));
  assert.deepEqual(unknown, [], `docs/configuration.md documents keys the reader does not accept: ${unknown.join(', ')}`);
});

function sourceFiles(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

test('the README documents every environment variable the program reads, and log.level', () => {
  const variables = new Set(sourceFiles('src').flatMap((f) => [...read(f).matchAll(/process\.env\.([A-Z0-9_]+)|process\.env\[['"]([A-Z0-9_]+)['"]\]/g)].map((m) => (m[1] ?? m[2])!)));
  assert.ok(variables.has('NOISEMESH_LOG_LEVEL'), [...variables].join(' '));
  const readme = read('README.md');
  for (const name of variables) assert.match(readme, new RegExp(`\`${name}\``), `README.md does not document ${name}`);
  assert.match(readme, /`log\.level`/);
  assert.match(readme, /\[docs\/configuration\.md\]\(docs\/configuration\.md\)/);
});

test('every page of docs/ is listed in the README\'s Documentation section and checked here; no section is an empty heading', () => {
  const readme = read('README.md');
  const section = readme.slice(readme.indexOf('## Documentation'), readme.indexOf('\n## ', readme.indexOf('## Documentation') + 1));
  for (const page of readdirSync(join(repoRoot, 'docs')).filter((p) => p.endsWith('.md'))) {
    assert.ok(section.includes(`(docs/${page})`), `docs/${page} is not in the README's Documentation list: a new user finds the docs there`);
    assert.ok(OWN_DOCS.includes(`docs/${page}`), `docs/${page} is not in OWN_DOCS: its links go unchecked`);
  }
  for (const doc of OWN_DOCS) {
    const lines = read(doc).replace(/```[^]*?```/g, (code) => code.replace(/[^\n]+/g, 'code')).split('\n');
    const headings = lines.flatMap((l, i) => (/^#{1,6}\s/.test(l) ? [i] : []));
    for (const i of headings) {
      const level = lines[i]!.match(/^#+/)![0].length;
      const rest = lines.slice(i + 1);
      const next = rest.findIndex((l) => /^#{1,6}\s/.test(l));
      const body = (next < 0 ? rest : rest.slice(0, next)).join('').trim();
      const nextLevel = next < 0 ? 0 : rest[next]!.match(/^#+/)![0].length;
      // A heading directly followed by a deeper one introduces it; one followed by nothing says nothing.
      if (body === '' && !(next >= 0 && nextLevel > level)) assert.fail(`${doc}:${i + 1}: "${lines[i]}" is an empty section: write it or remove the heading`);
    }
  }
});
