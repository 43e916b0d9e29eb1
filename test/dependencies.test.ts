// The dependencies install and load on the Node this runs on: npm install prints no engine
// warning, and @kubernetes/client-node (whose 2.x pulls undici 8, which needs Node >= 22.19
// and cannot even be imported on Node 20) imports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './helpers/paths.js';

interface LockPackage {
  readonly version?: string;
  readonly engines?: { readonly node?: string };
}

const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockPackage> };

test('@kubernetes/client-node imports under this Node, at the exact version package.json pins', async () => {
  const spec = packageJson.dependencies['@kubernetes/client-node']!;
  assert.match(spec, /^\d+\.\d+\.\d+$/, 'pinned to one version: a range could resolve to a 2.x that does not load on Node 20');
  assert.equal(lock.packages['node_modules/@kubernetes/client-node']?.version, spec, 'package-lock.json agrees: run npm install');
  let k8s: Record<string, unknown>;
  try {
    k8s = (await import('@kubernetes/client-node')) as Record<string, unknown>;
  } catch (err) {
    assert.fail(`@kubernetes/client-node ${spec} cannot be imported on Node ${process.version}: ${(err as Error).message}`);
  }
  assert.equal(typeof k8s.KubeConfig, 'function');
  assert.equal(typeof k8s.makeInformer, 'function', 'the informer the coming Kubernetes registry source uses');
});

type Version = readonly [number, number, number];

function parseVersion(text: string): Version {
  const parts = text.replace(/^v/, '').split('.');
  const n = (i: number): number => (parts[i] === undefined || parts[i] === 'x' || parts[i] === '*' ? 0 : Number(parts[i]));
  const v = [n(0), n(1), n(2)] as const;
  if (v.some((x) => !Number.isInteger(x))) throw new Error(`cannot read the version '${text}'`);
  return v;
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/**
 * Whether `version` satisfies an npm `engines.node` range, for the forms found in lock files:
 * `>=20`, `>= 14.6`, `^16 || ^18 || >=20`, `4.x || >=6.0.0`. Another form fails the test,
 * which then needs extending, rather than passing unread.
 */
function satisfies(version: Version, range: string): boolean {
  return range.split('||').some((alternative) => {
    const comparators = alternative.trim().replace(/([<>]=?|\^|~)\s+/g, '$1').split(/\s+/).filter(Boolean);
    return comparators.every((c) => {
      const m = /^(>=|<=|>|<|\^|~|=)?v?(\d+(?:\.(?:\d+|x|\*))?(?:\.(?:\d+|x|\*))?)$/.exec(c);
      if (m === null) throw new Error(`cannot read the engines range '${range}' (comparator '${c}'): extend satisfies()`);
      const bound = parseVersion(m[2]!);
      const given = m[2]!.split('.').filter((p) => p !== 'x' && p !== '*').length;
      switch (m[1]) {
        case '>=': return compare(version, bound) >= 0;
        case '>': return compare(version, bound) > 0;
        case '<=': return compare(version, bound) <= 0;
        case '<': return compare(version, bound) < 0;
        case '^': return version[0] === bound[0] && compare(version, bound) >= 0;
        case '~': return version[0] === bound[0] && (given < 2 || version[1] === bound[1]) && compare(version, bound) >= 0;
        default: // `20`, `20.x`, `=20.1.0`: the parts given must match
          return bound.slice(0, given).every((part, i) => version[i] === part);
      }
    });
  });
}

test('every package in package-lock.json accepts this Node (npm install prints no EBADENGINE warning)', () => {
  // The reader itself, on forms the lock holds today.
  const v20 = parseVersion('20.20.2');
  assert.equal(satisfies(v20, '>=22.19.0'), false);
  assert.equal(satisfies(v20, '^16 || ^18 || >=20'), true);
  assert.equal(satisfies(v20, '4.x || >=6.0.0'), true);
  assert.equal(satisfies(v20, '>= 20.19.0'), true);
  assert.equal(satisfies(v20, '^20.21.0'), false);

  const node = parseVersion(process.version);
  const refused = Object.entries(lock.packages)
    .filter(([, p]) => p.engines?.node !== undefined && !satisfies(node, p.engines.node))
    .map(([path, p]) => `${path.replace(/^node_modules\//, '')}@${p.version} wants node ${p.engines!.node}`);
  assert.deepEqual(refused, [], `Node ${process.version} is refused by: ${refused.join('; ')}`);
});
