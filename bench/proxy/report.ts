/**
 * The proxy benchmark's tables: every figure beside its ratio to plain TCP measured in the
 * same run, and the goals as ratios (measured over target side), met or missed.
 */
import type { Summary } from '../lib/stats.js';
import { formatRate, formatRatio, formatTable } from '../lib/table.js';
import type { IdleMemory, Latency } from './measure.js';

export type PathKey = 'plain' | 'wireguard' | 'tls' | 'relay' | 'chacha' | 'aesgcm';

export interface PathResult {
  readonly key: PathKey;
  readonly name: string;
  /** Bits per second, one sample per round. */
  readonly throughput: Summary;
  readonly latency: readonly Latency[];
  /** New connections per second, one sample per round. */
  readonly connect: Summary;
  /** Connections of the new-connection test that failed, all rounds. */
  readonly failed: number;
  readonly idle?: IdleMemory | { readonly error: string };
}

export const SUITES: Readonly<Record<'chacha' | 'aesgcm', string>> = {
  chacha: 'Noise_IK_25519_ChaChaPoly_BLAKE2s',
  aesgcm: 'Noise_IK_25519_AESGCM_SHA256',
};

/** Per-session memory the goal allows, KiB. */
const RSS_GOAL_KIB = 8;

const gbit = (bps: number): string => (bps / 1e9).toFixed(2);
const us = (v: number): string => v.toFixed(1);
const signedUs = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(1)}`;
const x = (v: number): string => `${formatRatio(v)}x`;

function byKey(results: readonly PathResult[], key: PathKey): PathResult | undefined {
  return results.find((r) => r.key === key);
}

function latencyOf(r: PathResult, bytes: number): Latency {
  const l = r.latency.find((v) => v.bytes === bytes);
  if (l === undefined) throw new Error(`no ${bytes}-byte latency for ${r.name}`);
  return l;
}

export function throughputTable(results: readonly PathResult[]): string {
  const plain = byKey(results, 'plain')!;
  const range = (v: Summary, f: (n: number) => string): string => (v.samples.length > 1 ? `${f(v.min)}-${f(v.max)}` : '-');
  return formatTable(
    ['path', 'Gbit/s', 'range', 'x plain', 'new conn/s', 'range', 'x plain', 'failed'],
    results.map((r) => [
      r.name,
      gbit(r.throughput.median),
      range(r.throughput, gbit),
      x(r.throughput.median / plain.throughput.median),
      formatRate(r.connect.median),
      range(r.connect, (n) => String(Math.round(n))),
      x(r.connect.median / plain.connect.median),
      String(r.failed),
    ]),
  );
}

export function latencyTable(results: readonly PathResult[], sizes: readonly number[]): string {
  const plain = byKey(results, 'plain')!;
  const rows: string[][] = [];
  for (const bytes of sizes) {
    const base = latencyOf(plain, bytes);
    for (const r of results) {
      const l = latencyOf(r, bytes);
      rows.push([
        r.name,
        String(bytes),
        us(l.p50),
        us(l.p99),
        us(l.p999),
        x(l.p50 / base.p50),
        x(l.p99 / base.p99),
        x(l.p999 / base.p999),
        signedUs(l.p50 - base.p50),
        signedUs(l.p99 - base.p99),
        signedUs(l.p999 - base.p999),
        us(l.max),
        String(l.samples),
        l.stealShare == null ? '-' : `${(l.stealShare * 100).toFixed(1)}%`,
      ]);
    }
  }
  return formatTable(
    ['path', 'bytes', 'p50 µs', 'p99 µs', 'p99.9 µs', 'p50 x plain', 'p99 x plain', 'p99.9 x plain', 'added p50', 'added p99', 'added p99.9', 'max µs', 'samples', 'host steal'],
    rows,
  );
}

export function memoryTable(results: readonly PathResult[]): string {
  const rows: string[][] = [];
  for (const r of results) {
    if (r.idle === undefined) continue;
    if ('error' in r.idle) {
      rows.push([r.name, '-', '-', '-', '-', '-', '-', `not measured: ${r.idle.error}`]);
      continue;
    }
    for (const p of r.idle.processes) {
      rows.push([
        r.name,
        p.label,
        (p.beforeKiB / 1024).toFixed(1),
        (p.halfKiB / 1024).toFixed(1),
        (p.afterKiB / 1024).toFixed(1),
        p.perSessionKiB.toFixed(2),
        x(p.perSessionKiB / RSS_GOAL_KIB),
        p.marginalKiB.toFixed(2),
      ]);
    }
  }
  return formatTable(['path', 'process', 'RSS before MiB', 'with half MiB', 'with all MiB', 'KiB/session', 'x 8 KiB goal', 'marginal KiB/session'], rows);
}

export interface Goal {
  readonly goal: string;
  readonly path: string;
  /** Measured over target; `atLeast` says which side of 1 meets the goal. */
  readonly ratio: number;
  readonly atLeast: boolean;
  readonly detail: string;
}

export function goals(results: readonly PathResult[], sizes: readonly number[]): Goal[] {
  const plain = byKey(results, 'plain')!;
  const wg = byKey(results, 'wireguard')!;
  const tls = byKey(results, 'tls')!;
  const out: Goal[] = [];
  for (const key of ['chacha', 'aesgcm'] as const) {
    const r = byKey(results, key);
    if (r === undefined) continue;
    const path = r.name;
    out.push({
      goal: 'throughput >= 2x wireguard-go',
      path,
      ratio: r.throughput.median / (2 * wg.throughput.median),
      atLeast: true,
      detail: `${gbit(r.throughput.median)} / (2 x ${gbit(wg.throughput.median)}) Gbit/s; ${x(r.throughput.median / wg.throughput.median)} wireguard-go`,
    });
    out.push({
      goal: 'throughput >= 0.5x TLS pair',
      path,
      ratio: r.throughput.median / (0.5 * tls.throughput.median),
      atLeast: true,
      detail: `${gbit(r.throughput.median)} / (0.5 x ${gbit(tls.throughput.median)}) Gbit/s; ${x(r.throughput.median / tls.throughput.median)} TLS`,
    });
    for (const bytes of sizes) {
      const added = latencyOf(r, bytes).p99 - latencyOf(plain, bytes).p99;
      const wgAdded = latencyOf(wg, bytes).p99 - latencyOf(plain, bytes).p99;
      out.push({
        goal: `added p99 (${bytes} B) <= wireguard-go's`,
        path,
        ratio: wgAdded > 0 ? added / wgAdded : Number.POSITIVE_INFINITY,
        atLeast: false,
        detail: `${signedUs(added)} µs / ${signedUs(wgAdded)} µs`,
      });
    }
    out.push({
      goal: 'new conn/s >= TLS pair',
      path,
      ratio: r.connect.median / tls.connect.median,
      atLeast: true,
      detail: `${formatRate(r.connect.median)} / ${formatRate(tls.connect.median)} per s`,
    });
    if (r.idle !== undefined && !('error' in r.idle)) {
      for (const p of r.idle.processes) {
        out.push({
          goal: `<= 8 KiB RSS per idle session (${p.label})`,
          path,
          ratio: p.perSessionKiB / RSS_GOAL_KIB,
          atLeast: false,
          detail: `${p.perSessionKiB.toFixed(2)} KiB / 8 KiB (marginal ${p.marginalKiB.toFixed(2)} KiB)`,
        });
      }
    }
  }
  return out;
}

export function goalsTable(list: readonly Goal[]): string {
  return formatTable(
    ['goal', 'path', 'ratio to target', 'met', 'measured / target'],
    list.map((g) => [g.goal, g.path, formatRatio(g.ratio), (g.atLeast ? g.ratio >= 1 : g.ratio <= 1) ? 'yes' : 'NO', g.detail]),
  );
}

/** Which Noise suite was faster, on each measurement. */
export function suiteComparison(results: readonly PathResult[], sizes: readonly number[]): string {
  const c = byKey(results, 'chacha');
  const a = byKey(results, 'aesgcm');
  if (c === undefined || a === undefined) return '';
  const rows: string[][] = [
    ['throughput (Gbit/s)', gbit(c.throughput.median), gbit(a.throughput.median), x(a.throughput.median / c.throughput.median), a.throughput.median > c.throughput.median ? 'AESGCM' : 'ChaChaPoly'],
    ['new conn/s', formatRate(c.connect.median), formatRate(a.connect.median), x(a.connect.median / c.connect.median), a.connect.median > c.connect.median ? 'AESGCM' : 'ChaChaPoly'],
  ];
  for (const bytes of sizes) {
    const lc = latencyOf(c, bytes);
    const la = latencyOf(a, bytes);
    rows.push([`p50 RTT ${bytes} B (µs)`, us(lc.p50), us(la.p50), x(la.p50 / lc.p50), la.p50 < lc.p50 ? 'AESGCM' : 'ChaChaPoly']);
    rows.push([`p99 RTT ${bytes} B (µs)`, us(lc.p99), us(la.p99), x(la.p99 / lc.p99), la.p99 < lc.p99 ? 'AESGCM' : 'ChaChaPoly']);
  }
  return formatTable(['measure', 'ChaChaPoly/BLAKE2s', 'AESGCM/SHA256', 'AESGCM x ChaChaPoly', 'better'], rows);
}
