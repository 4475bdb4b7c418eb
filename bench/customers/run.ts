/**
 * POST /v1/customers (with an Idempotency-Key, through auth, rate limit, validation and the
 * idempotency layer) against a bare fastify route that inserts one row, on the same
 * PostgreSQL, alternating rounds in one run. Prints medians and the ratio.
 *
 *   npm run bench:customers            (embedded PostgreSQL in a temp dir)
 *   DATABASE_URL=postgres://… npm run bench:customers
 *   BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_CONNECTIONS=50
 *
 * This machine's throughput drifts by ±25 % within minutes (shared virtual CPUs and disk),
 * so each round runs both sides back to back and the paired per-round ratio is reported
 * next to the ratio of the medians.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { benchDatabase, machine, median } from '../lib.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);

interface Side {
  name: 'bare' | 'moneta';
  child: ChildProcess;
  url: string;
  key: string;
}

async function startSide(name: Side['name'], db_url: string): Promise<Side> {
  const child = spawn(
    process.execPath,
    [path.join(HERE, '../../packages/server/bin/run-ts.js'), path.join(HERE, 'server.ts'), name, db_url],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
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
  return { name, child, url: url!, key: key! };
}

async function load(
  side: Side,
): Promise<{ rps: number; p50_ms: number; p99_ms: number; errors: number; non2xx: number }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (side.key !== 'none') headers.authorization = `Bearer ${side.key}`;
  const result = await autocannon({
    url: side.url,
    method: 'POST',
    connections: CONNECTIONS,
    duration: SECONDS,
    headers,
    body: JSON.stringify({ email: 'bench@example.com', metadata: { source: 'bench' } }),
    requests: [
      {
        setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'idempotency-key': randomUUID() } }),
      },
    ],
  });
  return {
    rps: result.requests.average,
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

async function main() {
  const db = await benchDatabase('moneta-bench');
  const db_url = db.url;
  const sides = [await startSide('bare', db_url), await startSide('moneta', db_url)];
  const results: Record<
    string,
    { rps: number; p50_ms: number; p99_ms: number; errors: number; non2xx: number }[]
  > = {
    bare: [],
    moneta: [],
  };
  try {
    // Warm up both (JIT, connection pools) before measuring.
    for (const side of sides)
      await autocannon({
        url: side.url,
        method: 'POST',
        connections: 10,
        duration: 2,
        headers: side.key === 'none' ? {} : { authorization: `Bearer ${side.key}` },
        requests: [
          {
            setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'idempotency-key': randomUUID() } }),
          },
        ],
      });
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const side of sides) {
        const r = await load(side);
        results[side.name]!.push(r);
        console.log(
          `round ${round} ${side.name.padEnd(6)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50_ms} ms  p99 ${r.p99_ms} ms  errors ${r.errors}  non-2xx ${r.non2xx}`,
        );
      }
    }
  } finally {
    for (const side of sides) side.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await db.close();
  }
  const summary = {
    date: new Date().toISOString(),
    machine: machine(),
    database: db.kind,
    connections: CONNECTIONS,
    seconds_per_round: SECONDS,
    rounds: ROUNDS,
    bare_median_rps: median(results.bare!.map((r) => r.rps)),
    moneta_median_rps: median(results.moneta!.map((r) => r.rps)),
    bare_median_p99_ms: median(results.bare!.map((r) => r.p99_ms)),
    moneta_median_p99_ms: median(results.moneta!.map((r) => r.p99_ms)),
    moneta_non2xx: results.moneta!.reduce((a, r) => a + r.non2xx + r.errors, 0),
    ratio: 0,
    round_ratios: results.moneta!.map((r, i) => r.rps / results.bare![i]!.rps),
    median_round_ratio: 0,
  };
  summary.ratio = summary.moneta_median_rps / summary.bare_median_rps;
  summary.median_round_ratio = median(summary.round_ratios);
  console.log('');
  console.log(
    `bare fastify insert : median ${summary.bare_median_rps.toFixed(0)} req/s, p99 ${summary.bare_median_p99_ms} ms`,
  );
  console.log(
    `moneta POST /v1/customers (idempotent): median ${summary.moneta_median_rps.toFixed(0)} req/s, p99 ${summary.moneta_median_p99_ms} ms`,
  );
  console.log(`ratio of medians moneta / bare : ${summary.ratio.toFixed(2)} (target ≥ 0.60)`);
  console.log(
    `per-round ratios: ${summary.round_ratios.map((r) => r.toFixed(2)).join(' ')}; median ${summary.median_round_ratio.toFixed(2)}`,
  );
  await writeFile(
    path.join(HERE, '../results/customers-latest.json'),
    `${JSON.stringify(summary, null, 2)}\n`,
  );
}

await main();
