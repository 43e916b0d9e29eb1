// Secret paths, agentIds and globs (src/trust-vector/glob.ts): the exact semantics, the edge
// cases a policy author trips on, and the matcher against a regular-expression reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Glob, Subject, checkSecretPath, isAgentId } from '../src/trust-vector/glob.js';
import { SegmentTrie } from '../src/trust-vector/rule-index.js';
import { property } from './helpers/random.js';

function glob(source: string, agent = false): Glob {
  const g = Glob.compile(source, { agent });
  assert.ok(g instanceof Glob, `${source}: ${String(g)}`);
  return g;
}

function matches(pattern: string, path: string, agent = false): boolean {
  return glob(pattern, agent).matches(new Subject(path));
}

test('secret paths: segments of A-Z a-z 0-9 . _ - between single slashes; no . or .. segment', () => {
  for (const ok of ['db', 'payments/db', 'payments/db/password', 'a.b/c_d/E-F', '.hidden/x', 'x/..y', 'x/y..', 'a'.repeat(512)]) {
    assert.equal(checkSecretPath(ok), undefined, ok);
  }
  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['/payments/db', /empty segment/],
    ['payments/db/', /empty segment/],
    ['payments//db', /empty segment/],
    ['payments/../admin', /\. or \.\. segment/],
    ['..', /\. or \.\. segment/],
    ['payments/./db', /\. or \.\. segment/],
    ['payments/%2e%2e', /character other than/],
    ['payments\\db', /character other than/],
    ['payments/d b', /character other than/],
    ['payments/db\n', /character other than/],
    ['payments/*', /character other than/],
    ['payments/dé', /character other than/],
    ['a'.repeat(513), /longer than 512/],
  ];
  for (const [path, why] of bad) {
    const message = checkSecretPath(path);
    assert.match(message ?? 'accepted', why, JSON.stringify(path));
    if (path.length > 2) assert.ok(!message!.includes(path), 'the message must not echo the path');
  }
});

test('* stays within a segment; ** spans whole segments, none included', () => {
  const cases: [string, string, boolean][] = [
    ['payments/*', 'payments/db', true],
    ['payments/*', 'payments/db/password', false],
    ['payments/*', 'payments', false],
    ['payments/**', 'payments', true],
    ['payments/**', 'payments/db', true],
    ['payments/**', 'payments/db/password', true],
    ['payments/**', 'paymentsdb', false],
    ['payments/**', 'payments-old/db', false],
    ['**', 'anything/at/all', true],
    ['**', 'x', true],
    ['*', 'x', true],
    ['*', 'x/y', false],
    ['**/password', 'password', true],
    ['**/password', 'a/b/password', true],
    ['**/password', 'a/b/password2', false],
    ['a/**/z', 'a/z', true],
    ['a/**/z', 'a/b/c/z', true],
    ['a/**/z', 'a/b/c/z/y', false],
    ['a/**/b/**/c', 'a/x/b/y/b/c', true],
    ['a/**/**/c', 'a/c', true],
    ['*-db', 'payments-db', true],
    ['*-db', '-db', true],
    ['*-db', 'payments-db2', false],
    ['db-*-primary', 'db-eu-west-primary', true],
    ['db-*-primary', 'db-primary', false],
    ['*a*b*', 'xaxbx', true],
    ['*a*b*', 'xbxax', false],
    ['a*a', 'a', false],
    ['a*a', 'aa', true],
    ['payments/db', 'payments/db', true],
    ['payments/db', 'payments/db/x', false],
    ['payments/db', 'Payments/db', false], // case matters
    ['Payments/*', 'payments/db', false],
    ['*/db', 'payments/db', true],
    ['*/db', 'payments/x/db', false],
  ];
  for (const [pattern, path, expected] of cases) {
    assert.equal(matches(pattern, path), expected, `${pattern} against ${path}`);
  }
});

test('globs that can never match, or mean something else than they look, are refused with the fix', () => {
  const bad: [string, boolean, RegExp][] = [
    ['', false, /is empty/],
    ['/payments/*', false, /empty segment/],
    ['payments/', false, /empty segment/],
    ['payments//db', false, /empty segment/],
    ['payments/../admin', false, /\. or \.\. segment/],
    ['a/**b', false, /'\*\*' must be a whole segment/],
    ['***', false, /'\*\*' must be a whole segment/],
    ['payments/db?', false, /character other than/],
    ['payments/{a,b}', false, /character other than/],
    ['payments/[ab]', false, /character other than/],
    ['Payments/*', true, /upper-case/],
    ['payments/api_v2', true, /character other than a-z 0-9 - \./],
    ['payments', true, /two segments/],
    ['a/b/c', true, /two segments/],
    ['a/b/c/**', true, /two segments/],
    ['x'.repeat(513), false, /longer than 512/],
  ];
  for (const [source, agent, why] of bad) {
    const g = Glob.compile(source, { agent });
    assert.equal(typeof g, 'string', `${source} was accepted`);
    assert.match(g as string, why, source);
  }
  assert.match(Glob.compile(7, { agent: false }) as string, /must be a string/);
  for (const ok of ['payments/*', '*/api', '**', 'payments/**', '**/api', 'pay*/api-*']) glob(ok, true);
});

test('agent globs: payments/* is every workload of namespace payments', () => {
  assert.equal(matches('payments/*', 'payments/api', true), true);
  assert.equal(matches('payments/*', 'payments-eu/api', true), false);
  assert.equal(matches('*/api', 'frontend/api', true), true);
  assert.equal(matches('*/api', 'frontend/api2', true), false);
  assert.equal(matches('**', 'frontend/api', true), true);
  assert.equal(matches('payments/api-*', 'payments/api-v2', true), true);
});

test('isAgentId is the registry rule: <dns-label>/<dns-subdomain-ish>, lower case', () => {
  const reference = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/;
  for (const ok of ['payments/api', 'a/b', 'a-1/b.c-d', `${'a'.repeat(63)}/${'b'.repeat(253)}`]) assert.equal(isAgentId(ok), true, ok);
  for (const bad of ['payments', 'Payments/api', 'payments/', '/api', 'a/b/c', 'a./b', '-a/b', 'a/b.', 'a/.b', 'a.b/c', `${'a'.repeat(64)}/b`, `a/${'b'.repeat(254)}`, '']) {
    assert.equal(isAgentId(bad), false, bad);
  }
  const alphabet = ['a', 'z', '0', '-', '.', '/', 'A', '_'];
  property(3000, (rng) => {
    let id = '';
    const n = 1 + rng.int(8);
    for (let i = 0; i < n; i++) id += rng.pick(alphabet);
    assert.equal(isAgentId(id), reference.test(id), JSON.stringify(id));
  });
});

/** The reference: the same semantics as a regular expression over '/' + path. */
function referenceRegExp(pattern: string): RegExp {
  let source = '';
  for (const segment of pattern.split('/')) {
    if (segment === '**') source += '(?:/[^/]+)*';
    else source += '/' + segment.split('*').map((p) => p.replace(/[.\-]/g, '\\$&')).join('[^/]*');
  }
  return new RegExp(`^${source}$`);
}

test('the matcher agrees with a regular-expression reference on random globs and paths', () => {
  const pieces = ['a', 'b', 'ab', 'a.b', 'b-a'];
  const tokens = ['a', 'b', 'ab', '*', '**', 'a*', '*b', '*a*', 'a*b', '**', '*'];
  property(4000, (rng) => {
    const pattern = Array.from({ length: 1 + rng.int(4) }, () => rng.pick(tokens)).join('/');
    const path = Array.from({ length: 1 + rng.int(5) }, () => rng.pick(pieces)).join('/');
    const g = Glob.compile(pattern, { agent: false });
    if (typeof g === 'string') {
      assert.fail(`${pattern} refused: ${g}`);
    }
    assert.equal(g.matches(new Subject(path)), referenceRegExp(pattern).test('/' + path), `${pattern} against ${path}`);
  });
});

test('matching stays linear on patterns built to make a backtracking matcher explode', () => {
  // A regex engine takes exponential time on this kind of input; we only check the answer
  // here (speed belongs to the benchmark), but a quadratic-or-worse matcher would hang.
  const pattern = '**/a*a*a*a*a*a*a*a*a*b/**/a*a*a*a*a*b/**/c';
  const path = Array.from({ length: 200 }, () => 'a'.repeat(2)).join('/');
  assert.equal(matches(pattern, path), false);
});

test('the segment trie finds exactly the globs that match, all at once', () => {
  // The rule index's walk (rule-index.ts) against each glob's own matcher: one trie holding
  // many globs (sharing prefixes, `*`, `**` and in-segment patterns grouped by their literal
  // ends) must end on the nodes of exactly the globs that match the path.
  const pieces = ['a', 'b', 'ab', 'a.b', 'b-a', 'aab'];
  const tokens = ['a', 'b', 'ab', '*', '**', 'a*', '*b', '*a*', 'a*b', 'aa*', '*-a', 'b-*', 'a*a*b'];
  property(1500, (rng) => {
    const sources = Array.from({ length: 1 + rng.int(40) }, () => Array.from({ length: 1 + rng.int(4) }, () => rng.pick(tokens)).join('/'));
    const trie = new SegmentTrie();
    const globs = sources.map((source) => glob(source));
    globs.forEach((g, i) => trie.add(g, i));
    for (let k = 0; k < 10; k++) {
      const path = Array.from({ length: 1 + rng.int(5) }, () => rng.pick(pieces)).join('/');
      const walked = trie.walk(path);
      const found = [...new Set(walked.items.slice(0, walked.length).flatMap((node) => node.rules))].sort((x, y) => x - y);
      const expected = globs.flatMap((g, i) => (g.matches(new Subject(path)) ? [i] : []));
      assert.deepEqual(found, expected, `${path} against ${JSON.stringify(sources)}`);
    }
  });
});
