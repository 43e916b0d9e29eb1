// The pod's nat rules as text: rendering, reconciliation against a current table, options,
// and the init-iptables command's --dry-run and flag checks. Needs no root; the rules are
// exercised for real in capture-netns.test.ts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  captureRuleSet,
  captureRulesOptions,
  emptyRuleSet,
  installCaptureRules,
  IptablesOptionError,
  IptablesToolMissingError,
  natTableOf,
  parseCidr,
  parseNatTable,
  restoreInput,
  EMPTY_NAT_TABLE,
} from '../src/proxy/iptables/index.js';
import { repoRoot } from './helpers/paths.js';

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'main.js');

function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'init-iptables', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

const DEFAULT_IPV4 = `*nat
:NOISEMESH_OUTPUT - [0:0]
:NOISEMESH_REDIRECT - [0:0]
:NOISEMESH_INBOUND - [0:0]
:NOISEMESH_IN_REDIRECT - [0:0]
-A NOISEMESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A NOISEMESH_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A NOISEMESH_OUTPUT -o lo -j RETURN
-A NOISEMESH_OUTPUT -j NOISEMESH_REDIRECT
-A NOISEMESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A NOISEMESH_INBOUND -p tcp -m tcp --dport 15443 -j RETURN
-A NOISEMESH_INBOUND -p tcp -m tcp --dport 15020 -j RETURN
-A NOISEMESH_INBOUND -p tcp -j NOISEMESH_IN_REDIRECT
-A OUTPUT -p tcp -j NOISEMESH_OUTPUT
-A PREROUTING -p tcp -j NOISEMESH_INBOUND
COMMIT
`;

describe('rendering', () => {
  test('defaults (DESIGN.md): ports 15001/15006/15443, UID 1337, admin port 15020 left alone', () => {
    assert.equal(restoreInput(captureRuleSet(captureRulesOptions(), 4), EMPTY_NAT_TABLE), DEFAULT_IPV4);
    // IPv6 differs only where a family matters: excluded networks, none by default.
    assert.equal(restoreInput(captureRuleSet(captureRulesOptions(), 6), EMPTY_NAT_TABLE), DEFAULT_IPV4);
  });

  test('custom options: every port, the UID and the exclusions of the right family', () => {
    const options = captureRulesOptions({
      proxyUid: 2000,
      outboundPort: 16001,
      inboundPort: 16006,
      meshPort: 16443,
      excludeOutboundPorts: [5432, 6379, 5432],
      excludeOutboundCidrs: ['10.1.2.3/8', 'fd00:0:0:0::1/16', '192.168.1.7'],
      excludeInboundPorts: [8081, 9090],
    });
    const v4 = captureRuleSet(options, 4);
    assert.deepEqual(v4.rules, [
      '-A NOISEMESH_REDIRECT -p tcp -j REDIRECT --to-ports 16001',
      '-A NOISEMESH_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN',
      '-A NOISEMESH_OUTPUT -p tcp -m tcp --dport 6379 -j RETURN',
      '-A NOISEMESH_OUTPUT -m owner --uid-owner 2000 -j RETURN',
      '-A NOISEMESH_OUTPUT -o lo -j RETURN',
      '-A NOISEMESH_OUTPUT -d 10.0.0.0/8 -j RETURN',
      '-A NOISEMESH_OUTPUT -d 192.168.1.7/32 -j RETURN',
      '-A NOISEMESH_OUTPUT -j NOISEMESH_REDIRECT',
      '-A NOISEMESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006',
      '-A NOISEMESH_INBOUND -p tcp -m tcp --dport 16443 -j RETURN',
      '-A NOISEMESH_INBOUND -p tcp -m tcp --dport 8081 -j RETURN',
      '-A NOISEMESH_INBOUND -p tcp -m tcp --dport 9090 -j RETURN',
      '-A NOISEMESH_INBOUND -p tcp -j NOISEMESH_IN_REDIRECT',
    ]);
    const v6 = captureRuleSet(options, 6);
    assert.deepEqual(
      v6.rules.filter((l) => l.includes(' -d ')),
      ['-A NOISEMESH_OUTPUT -d fd00::/16 -j RETURN'],
    );
    assert.deepEqual(v6.jumps, ['-A OUTPUT -p tcp -j NOISEMESH_OUTPUT', '-A PREROUTING -p tcp -j NOISEMESH_INBOUND']);
  });

  test('without inbound capture there is no inbound chain and no PREROUTING jump', () => {
    const set = captureRuleSet(captureRulesOptions({ inboundPort: null }), 4);
    assert.deepEqual(set.chains, ['NOISEMESH_OUTPUT', 'NOISEMESH_REDIRECT']);
    assert.deepEqual(set.jumps, ['-A OUTPUT -p tcp -j NOISEMESH_OUTPUT']);
    assert.ok(set.rules.every((l) => !l.includes('INBOUND') && !l.includes('IN_REDIRECT')));
  });

  test('networks are printed as iptables-save prints them', () => {
    const cases: [string, string][] = [
      ['10.1.2.3/8', '10.0.0.0/8'],
      ['10.96.0.0/12', '10.96.0.0/12'],
      ['172.16.5.4', '172.16.5.4/32'],
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['2001:DB8::1/32', '2001:db8::/32'],
      ['fd00:251:1:0:0:0:0:2/64', 'fd00:251:1::/64'],
      ['1:0:0:1:0:0:0:1', '1:0:0:1::1/128'],
      ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4/128'],
      ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7/128'],
      ['::1', '::1/128'],
      ['::/0', '::/0'],
    ];
    for (const [input, text] of cases) assert.deepEqual(parseCidr(input), { family: input.includes(':') ? 6 : 4, text }, input);
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'fd00::/129', '10.0.0.0/', 'example.com/8', '10.0.0.0/-1']) {
      assert.ok('problem' in parseCidr(bad), bad);
    }
  });
});

describe('reconciling with the current table', () => {
  const wanted = captureRuleSet(captureRulesOptions(), 4);
  const SAVE_WITH_OTHERS = `# Generated by iptables-save v1.8.9
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j NOISEMESH_OUTPUT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:NOISEMESH_OUTPUT - [0:0]
:NOISEMESH_REDIRECT - [0:0]
:NOISEMESH_OLD - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -p tcp -j NOISEMESH_OUTPUT
-A OUTPUT -j KUBE-SERVICES
-A OUTPUT -p tcp -j NOISEMESH_OUTPUT
-A OUTPUT -j NOISEMESH_OLD
-A NOISEMESH_OUTPUT -j NOISEMESH_REDIRECT
-A NOISEMESH_OLD -j NOISEMESH_REDIRECT
-A NOISEMESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
`;

  test('parses only the nat table', () => {
    const table = parseNatTable(SAVE_WITH_OTHERS);
    assert.deepEqual(table.chains, [
      'PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING', 'KUBE-SERVICES', 'NOISEMESH_OUTPUT', 'NOISEMESH_REDIRECT', 'NOISEMESH_OLD',
    ]);
    assert.equal(table.rules.length, 8);
    assert.deepEqual(table.rules[1], { chain: 'OUTPUT', line: '-A OUTPUT -p tcp -j NOISEMESH_OUTPUT' });
  });

  test('keeps one copy of each jump, deletes duplicates and stale jumps and chains, leaves others alone', () => {
    const lines = restoreInput(wanted, parseNatTable(SAVE_WITH_OTHERS)).split('\n');
    const declarations = wanted.chains.map((c) => `:${c} - [0:0]`);
    assert.deepEqual(lines, [
      '*nat',
      ...declarations,
      ...wanted.rules,
      '-D OUTPUT -p tcp -j NOISEMESH_OUTPUT', // the second copy
      '-D OUTPUT -j NOISEMESH_OLD',
      '-A PREROUTING -p tcp -j NOISEMESH_INBOUND', // the only wanted jump missing
      '-F NOISEMESH_OLD',
      '-X NOISEMESH_OLD',
      'COMMIT',
      '',
    ]);
    assert.ok(!lines.some((l) => l.includes('KUBE-SERVICES')));
  });

  test('installing over an installed table adds no jump: running it twice is one copy', () => {
    // Our chains are declared (flushed) and refilled; the jumps already there are kept as they are.
    assert.equal(restoreInput(wanted, natTableOf(wanted)), DEFAULT_IPV4.replace(/^-A (OUTPUT|PREROUTING) .*\n/gm, ''));
  });

  test('switching inbound capture off deletes its jump and chains', () => {
    const outboundOnly = captureRuleSet(captureRulesOptions({ inboundPort: null }), 4);
    const lines = restoreInput(outboundOnly, natTableOf(wanted)).split('\n');
    assert.deepEqual(lines.filter((l) => /^-[DFX] /.test(l)), [
      '-D PREROUTING -p tcp -j NOISEMESH_INBOUND',
      '-F NOISEMESH_INBOUND',
      '-F NOISEMESH_IN_REDIRECT',
      '-X NOISEMESH_INBOUND',
      '-X NOISEMESH_IN_REDIRECT',
    ]);
  });

  test('cleanup is installing the empty rule set: jumps first, then every chain of ours', () => {
    assert.equal(
      restoreInput(emptyRuleSet(4), natTableOf(wanted)),
      [
        '*nat',
        '-D OUTPUT -p tcp -j NOISEMESH_OUTPUT',
        '-D PREROUTING -p tcp -j NOISEMESH_INBOUND',
        ...wanted.chains.map((c) => `-F ${c}`),
        ...wanted.chains.map((c) => `-X ${c}`),
        'COMMIT',
        '',
      ].join('\n'),
    );
    assert.equal(restoreInput(emptyRuleSet(4), EMPTY_NAT_TABLE), '*nat\nCOMMIT\n');
  });

  test('a missing iptables tool is reported with how to install it', async () => {
    await assert.rejects(
      installCaptureRules(captureRulesOptions(), 4, { save: 'noisemesh-no-such-iptables-save', restore: 'noisemesh-no-such-iptables-restore' }),
      (err: unknown) =>
        err instanceof IptablesToolMissingError &&
        err.code === 'IPTABLES_TOOL_MISSING' &&
        /noisemesh-no-such-iptables-save was not found on PATH: install iptables \(Debian/.test(err.message),
    );
  });
});

describe('options', () => {
  const rejects = (input: Parameters<typeof captureRulesOptions>[0], field: string, problem: RegExp) =>
    assert.throws(
      () => captureRulesOptions(input),
      (err: unknown) => err instanceof IptablesOptionError && err.field === field && problem.test(err.problem),
      `${JSON.stringify(input)} should be refused for ${field}`,
    );

  test('out-of-range and conflicting values name the field', () => {
    rejects({ outboundPort: 0 }, 'outboundPort', /1\.\.65535/);
    rejects({ inboundPort: 65536 }, 'inboundPort', /1\.\.65535/);
    rejects({ meshPort: 1.5 }, 'meshPort', /1\.\.65535/);
    rejects({ proxyUid: -1 }, 'proxyUid', /0\.\.4294967294/);
    rejects({ proxyUid: 4294967295 }, 'proxyUid', /0\.\.4294967294/);
    rejects({ excludeOutboundPorts: [80, 0] }, 'excludeOutboundPorts[1]', /1\.\.65535/);
    rejects({ excludeInboundPorts: [70000] }, 'excludeInboundPorts[0]', /1\.\.65535/);
    rejects({ excludeOutboundCidrs: ['10.0.0.0/8', 'nope'] }, 'excludeOutboundCidrs[1]', /'nope' is no network.*e\.g\. 10\.96\.0\.0\/12/);
    rejects({ inboundPort: 15001 }, 'inboundPort', /must differ/);
    rejects({ meshPort: 15001 }, 'meshPort', /must differ/);
    rejects({ meshPort: 15006 }, 'meshPort', /must differ/);
  });

  test('with inbound capture off, the mesh port may take the usual inbound capture port', () => {
    assert.equal(captureRulesOptions({ inboundPort: null, meshPort: 15006 }).meshPort, 15006);
  });
});

describe('noisemesh init-iptables', () => {
  test('--dry-run prints the restore input of both families and needs no root', async () => {
    const result = await cli(['--dry-run']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      `# IPv4: iptables-restore --noflush\n${DEFAULT_IPV4}\n` +
        `# IPv6: ip6tables-restore --noflush, applied when ip6tables works\n${DEFAULT_IPV4}\n`,
    );
  });

  test('--dry-run with flags', async () => {
    const result = await cli([
      '--dry-run', '--no-ipv6', '--proxy-uid', '2000', '--outbound-port', '16001', '--mesh-port', '16443',
      '--exclude-outbound-ports', '5432, 6379', '--exclude-outbound-cidrs', '10.96.0.0/12,fd00::/8',
      '--exclude-inbound-ports', '',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.split('\n');
    assert.equal(lines[0], '# IPv4: iptables-restore --noflush');
    assert.ok(!result.stdout.includes('IPv6'));
    for (const line of [
      '-A NOISEMESH_REDIRECT -p tcp -j REDIRECT --to-ports 16001',
      '-A NOISEMESH_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN',
      '-A NOISEMESH_OUTPUT -p tcp -m tcp --dport 6379 -j RETURN',
      '-A NOISEMESH_OUTPUT -m owner --uid-owner 2000 -j RETURN',
      '-A NOISEMESH_OUTPUT -d 10.96.0.0/12 -j RETURN',
      '-A NOISEMESH_INBOUND -p tcp -m tcp --dport 16443 -j RETURN',
    ]) {
      assert.ok(lines.includes(line), `missing ${line} in:\n${result.stdout}`);
    }
    assert.ok(!result.stdout.includes('fd00::/8'), 'an IPv6 network in the IPv4 rules');
    assert.ok(!result.stdout.includes('--dport 15020'), "--exclude-inbound-ports '' clears the default");
  });

  test('--dry-run --no-inbound and --dry-run --cleanup', async () => {
    const outbound = await cli(['--dry-run', '--no-ipv6', '--no-inbound']);
    assert.equal(outbound.code, 0, outbound.stderr);
    assert.ok(!/INBOUND|IN_REDIRECT|PREROUTING/.test(outbound.stdout), outbound.stdout);
    const cleanup = await cli(['--dry-run', '--no-ipv6', '--cleanup']);
    assert.equal(cleanup.code, 0, cleanup.stderr);
    assert.match(cleanup.stdout, /^-D OUTPUT -p tcp -j NOISEMESH_OUTPUT$/m);
    assert.match(cleanup.stdout, /^-X NOISEMESH_IN_REDIRECT$/m);
    assert.doesNotMatch(cleanup.stdout, /^-A /m);
  });

  test('bad flag values are refused with exit code 2, naming the flag and the fix', async () => {
    const cases: [string[], RegExp][] = [
      [['--outbound-port', '0'], /--outbound-port: 0 is no TCP port: use an integer 1\.\.65535/],
      [['--inbound-port', 'abc'], /--inbound-port: 'abc' is not a whole number/],
      [['--mesh-port', '15001'], /--mesh-port: 15001 is also a capture port/],
      [['--proxy-uid', '4294967295'], /--proxy-uid: 4294967295 is no UID/],
      [['--exclude-outbound-ports', '80,http'], /--exclude-outbound-ports \(item 2\): 'http' is not a whole number/],
      [['--exclude-inbound-ports', '15020,99999'], /--exclude-inbound-ports \(item 2\): 99999 is no TCP port/],
      [['--exclude-outbound-cidrs', '10.0.0.0/8,10.0.0.0/40'], /--exclude-outbound-cidrs \(item 2\): '10\.0\.0\.0\/40' is no network: prefix length '40' is not 0\.\.32/],
      [['--no-inbound', '--inbound-port', '15006'], /--inbound-port and --no-inbound contradict/],
      [['--ipv6', '--no-ipv6'], /--ipv6 and --no-ipv6 contradict/],
      [['--outbound'], /^noisemesh init-iptables: unknown option '--outbound'\n/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(['--dry-run', ...args]);
      assert.equal(result.code, 2, `${args.join(' ')}: exit ${result.code}, stdout ${result.stdout}`);
      assert.match(result.stderr, message, args.join(' '));
      assert.equal(result.stdout, '', args.join(' '));
    }
  });

  test('--help prints every flag', async () => {
    const result = await cli(['--help']);
    assert.equal(result.code, 0);
    for (const flag of [
      '--proxy-uid', '--outbound-port', '--inbound-port', '--mesh-port', '--exclude-outbound-ports',
      '--exclude-outbound-cidrs', '--exclude-inbound-ports', '--no-inbound', '--ipv6', '--dry-run', '--cleanup',
    ]) {
      assert.ok(result.stdout.includes(flag), flag);
    }
  });
});
