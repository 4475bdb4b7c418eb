/**
 * A paired HTTP benchmark: a Moneta endpoint against a bare fastify route that inserts one
 * row, on the same PostgreSQL, alternating rounds in one run (autocannon in this process,
 * each server in its own). Prints medians, the ratio of the medians and the per-round ratios.
 *
 * This machine's throughput drifts by ±25 % within minutes (shared virtual CPUs and disk),
 * so each round runs both sides back to back and the paired per-round ratio is reported
 * next to the ratio of the medians.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { type Classify, cpuSince, cpuSnapshot, descendsFrom, isBackendOf } from './cpu.ts';
import { benchDatabase, median, writeResults } from './lib.ts';
import { type OpenLoopResult, openLoop } from './open-loop.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);

export interface PairedBench {
  /** Names the database and the results file (`bench/results/<name>-latest.json`). */
  name: string;
  /** What bench/server.ts serves on the Moneta side (`customers` or `payment_methods`). */
  moneta_endpoint: 'customers' | 'payment_methods' | 'payment_intents';
  /** The Moneta request: body and its content type; every request gets a new Idempotency-Key. */
  body: string;
  content_type: string;
  /** For the printout: what the Moneta side does, and the ratio the issue asks for. */
  title: string;
  target_ratio: number;
  /**
   * Fixed request rates (per second) at which to measure Moneta's latency after the rounds,
   * each for one round's length (`BENCH_LATENCY_RATES=250,500` overrides).
   */
  latency_rates?: number[];
}

/**
 * Connections the open-loop generator may use at a fixed rate (`BENCH_LATENCY_CONNECTIONS`,
 * default 64): enough that a due request finds one free unless the server has fallen behind.
 */
const LATENCY_CONNECTIONS = Number(process.env.BENCH_LATENCY_CONNECTIONS ?? 64);
/** Each fixed rate runs this long before its measured seconds (see openLoop). */
const LATENCY_WARMUP_SECONDS = 2;

interface Side {
  name: 'bare' | 'moneta';
  pid: number;
  child: ChildProcess;
  url: string;
  key: string;
}

interface Round {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  non2xx: number;
  /** CPU per answered request, by party (server, postgres, simulator, load generator). */
  cpu_ms_per_request: Record<string, number>;
}

async function startSide(name: Side['name'], db_url: string, endpoint: string): Promise<Side> {
  const child = spawn(
    process.execPath,
    [
      // BENCH_CPU_PROF=DIR writes a V8 CPU profile of the Moneta side there (open it in Chrome's DevTools);
      // BENCH_CPU_PROF_SIDE=bare profiles the baseline instead.
      ...(process.env.BENCH_CPU_PROF && name === (process.env.BENCH_CPU_PROF_SIDE ?? 'moneta')
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`]
        : []),
      // BENCH_NODE_FLAGS: V8/Node flags for the Moneta side only, e.g. `--max-semi-space-size=32`.
      ...(process.env.BENCH_NODE_FLAGS && name === 'moneta' ? process.env.BENCH_NODE_FLAGS.split(' ') : []),
      path.join(HERE, '../packages/server/bin/run-ts.js'),
      path.join(HERE, 'server.ts'),
      name,
      db_url,
      endpoint,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /READY (\S+) (\S+)/.exec(out);
      if (m) resolve(m[0]);
    });
    child.on('exit', (code) => reject(new Error(`${name} server exited with ${code}`)));
  });
  const [, url, key] = line.split(' ');
  return { name, pid: child.pid!, child, url: url!, key: key! };
}

function requestHeaders(side: Side, bench: PairedBench): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': side.name === 'bare' ? 'application/json' : bench.content_type,
  };
  if (side.key !== 'none') headers.authorization = `Bearer ${side.key}`;
  return headers;
}

function options(side: Side, bench: PairedBench, connections: number, seconds: number): autocannon.Options {
  const headers = requestHeaders(side, bench);
  return {
    url: side.url,
    method: 'POST',
    connections,
    duration: seconds,
    headers,
    body: side.name === 'bare' ? JSON.stringify({ email: 'bench@example.com' }) : bench.body,
    requests: [
      { setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'idempotency-key': randomUUID() } }) },
    ],
  };
}

/** The parties whose CPU a round of `side` counts. */
function parties(side: Side, database: string): Classify {
  // The database's backends serve both sides, but only the side under load keeps them busy.
  return (p, all) => {
    if (p.pid === side.pid) return 'server';
    if (p.pid === process.pid) return 'load generator';
    if (isBackendOf(p, database)) return 'postgres backends';
    if (p.cmdline.includes('acquirer-sim') && descendsFrom(p.pid, side.pid, all)) return 'simulator';
    return null;
  };
}

/** Runs `work` and returns it with each party's CPU ms per request it answered. */
async function withCpu<T>(
  classify: Classify,
  work: () => Promise<T>,
  answered: (result: T) => number,
): Promise<{ result: T; cpu_ms_per_request: Record<string, number> }> {
  const before = cpuSnapshot(classify);
  const result = await work();
  const per = Math.max(1, answered(result));
  const cpu = cpuSince(before, cpuSnapshot(classify));
  return {
    result,
    cpu_ms_per_request: Object.fromEntries(Object.entries(cpu).map(([party, ms]) => [party, ms / per])),
  };
}

async function load(side: Side, bench: PairedBench, database: string): Promise<Round> {
  const { result, cpu_ms_per_request } = await withCpu(
    parties(side, database),
    () => autocannon(options(side, bench, CONNECTIONS, SECONDS)),
    (r) => r.requests.total,
  );
  return {
    rps: result.requests.average,
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    cpu_ms_per_request,
  };
}

/** Each party's median over the rounds. */
function medianCpu(rounds: readonly Round[]): Record<string, number> {
  const parties = new Set(rounds.flatMap((r) => Object.keys(r.cpu_ms_per_request)));
  return Object.fromEntries(
    [...parties].map((p) => [p, median(rounds.map((r) => r.cpu_ms_per_request[p] ?? 0))]),
  );
}

function formatCpu(cpu: Record<string, number>): string {
  return Object.entries(cpu)
    .map(([party, ms]) => `${party} ${ms.toFixed(2)}`)
    .join(', ');
}

/** The process's peak resident set (VmHWM) in KiB, read before it is stopped; 0 if unknown. */
function peakRssKb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function latencyRates(bench: PairedBench): number[] {
  const env = process.env.BENCH_LATENCY_RATES;
  if (env === undefined) return bench.latency_rates ?? [];
  const rates = env.split(',').filter(Boolean).map(Number);
  if (rates.some((r) => !Number.isInteger(r) || r < 1)) {
    throw new Error(
      `BENCH_LATENCY_RATES must list positive whole rates per second, e.g. 250,500 (got ${env})`,
    );
  }
  return rates;
}

export async function runPairedBench(bench: PairedBench): Promise<void> {
  const db = await benchDatabase(`moneta-bench-${bench.name}`);
  const database = new URL(db.url).pathname.slice(1);
  const sides = [
    await startSide('bare', db.url, bench.moneta_endpoint),
    await startSide('moneta', db.url, bench.moneta_endpoint),
  ];
  const results: Record<Side['name'], Round[]> = { bare: [], moneta: [] };
  const latency: (OpenLoopResult & { cpu_ms_per_request: Record<string, number> })[] = [];
  let peak_rss_mb = 0;
  try {
    // Warm up both (JIT, connection pools) before measuring.
    for (const side of sides) await autocannon(options(side, bench, 10, 2));
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const side of sides) {
        const r = await load(side, bench, database);
        results[side.name].push(r);
        console.log(
          `round ${round} ${side.name.padEnd(6)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50_ms} ms  p99 ${r.p99_ms} ms  errors ${r.errors}  non-2xx ${r.non2xx}  CPU ms/request: ${formatCpu(r.cpu_ms_per_request)}`,
        );
      }
    }
    for (const rate of latencyRates(bench)) {
      const { result, cpu_ms_per_request } = await withCpu(
        parties(sides[1]!, database),
        () =>
          openLoop({
            origin: new URL(sides[1]!.url).origin,
            path: new URL(sides[1]!.url).pathname,
            headers: () => ({ ...requestHeaders(sides[1]!, bench), 'idempotency-key': randomUUID() }),
            body: bench.body,
            rate_per_s: rate,
            seconds: SECONDS,
            warmup_seconds: LATENCY_WARMUP_SECONDS,
            max_connections: LATENCY_CONNECTIONS,
          }),
        (r) => r.answered_with_warmup,
      );
      const run = { ...result, cpu_ms_per_request };
      latency.push(run);
      console.log(
        `at ${rate}/s (open loop): answered ${run.achieved_rps.toFixed(0)}/s  ${run.shed > 0 ? 'of those sent: ' : ''}p50 ${run.p50_ms.toFixed(1)} ms  p90 ${run.p90_ms.toFixed(1)} ms  p99 ${run.p99_ms.toFixed(1)} ms  max ${run.max_ms.toFixed(1)} ms  shed ${run.shed}  errors ${run.errors}  non-2xx ${run.non2xx}  CPU ms/request: ${formatCpu(cpu_ms_per_request)}`,
      );
    }
    peak_rss_mb = Math.round(peakRssKb(sides[1]!.pid) / 1024);
  } finally {
    for (const side of sides) side.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await db.close();
  }
  const round_ratios = results.moneta.map((r, i) => r.rps / results.bare[i]!.rps);
  const summary = {
    connections: CONNECTIONS,
    seconds_per_round: SECONDS,
    rounds: ROUNDS,
    bare_median_rps: median(results.bare.map((r) => r.rps)),
    moneta_median_rps: median(results.moneta.map((r) => r.rps)),
    bare_median_p99_ms: median(results.bare.map((r) => r.p99_ms)),
    moneta_median_p99_ms: median(results.moneta.map((r) => r.p99_ms)),
    moneta_non2xx: results.moneta.reduce((a, r) => a + r.non2xx + r.errors, 0),
    moneta_peak_rss_mb: peak_rss_mb,
    ratio: 0,
    round_ratios,
    median_round_ratio: median(round_ratios),
    latency_at_fixed_rates: latency,
    bare_median_cpu_ms_per_request: medianCpu(results.bare),
    moneta_median_cpu_ms_per_request: medianCpu(results.moneta),
  };
  summary.ratio = summary.moneta_median_rps / summary.bare_median_rps;
  console.log('');
  console.log(
    `bare fastify insert : median ${summary.bare_median_rps.toFixed(0)} req/s, p99 ${summary.bare_median_p99_ms} ms`,
  );
  console.log(
    `${bench.title}: median ${summary.moneta_median_rps.toFixed(0)} req/s, p99 ${summary.moneta_median_p99_ms} ms, peak RSS ${peak_rss_mb} MB`,
  );
  console.log(
    `ratio of medians moneta / bare : ${summary.ratio.toFixed(2)} (target ≥ ${bench.target_ratio.toFixed(2)})`,
  );
  console.log(
    `per-round ratios: ${round_ratios.map((r) => r.toFixed(2)).join(' ')}; median ${summary.median_round_ratio.toFixed(2)}`,
  );
  console.log(`CPU ms per request (medians): bare ${formatCpu(summary.bare_median_cpu_ms_per_request)}`);
  console.log(`                              moneta ${formatCpu(summary.moneta_median_cpu_ms_per_request)}`);
  await writeResults(bench.name, db.kind, summary);
}
