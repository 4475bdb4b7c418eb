/**
 * Webhook delivery: how fast the outbox dispatcher delivers, and how soon after its commit
 * an event reaches the receiver.
 *
 * Moneta runs in its own process (role all: API and dispatcher), the receiver in this one
 * (a plain node:http server answering 200). Two measures, each with its baseline in the
 * same run:
 * - throughput: a backlog of events committed to the outbox at once, fanned out to four
 *   endpoints on the receiver, drained; against plain POSTs of the same body to the same
 *   receiver with as many connections as the dispatcher may use (autocannon);
 * - latency: PaymentIntents created through the API at an evenly paced rate (500/s by
 *   default, see ../open-loop.ts), each committing one event, delivered to one endpoint; the
 *   time from the event's creation in its transaction (`events.created_at`) to its arrival at
 *   the receiver.
 *
 *   npm run bench:webhooks     BENCH_RUNS=3 BENCH_BACKLOG=20000 BENCH_RATE=500 BENCH_SECONDS=10
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import autocannon from 'autocannon';
import pg from 'pg';
import { loadConfig } from '../../packages/server/src/config/index.ts';
import { benchDatabase, median, writeResults } from '../lib.ts';
import { openLoop } from '../open-loop.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 20_000);
const RATE = Number(process.env.BENCH_RATE ?? 500);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ENDPOINTS = 4;
/** The dispatcher's per-endpoint concurrency: MONETA_WEBHOOK_CONCURRENCY's default, as the benchmark's Moneta runs. */
const PER_ENDPOINT = loadConfig({}).webhook_concurrency;

/**
 * The receiver: answers 200 at once and notes when each event arrived. It runs in a worker
 * thread, with an event loop of its own, so the load generator in this thread does not
 * delay its answers (as a merchant's server is not slowed by our load generator).
 */
const RECEIVER = `
  const { parentPort } = require('node:worker_threads');
  const http = require('node:http');
  let pending = [];
  let received = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c.toString('utf8'); });
    req.on('end', () => {
      received += 1;
      const m = /"id":"(evt_[0-9A-Z]+)"/.exec(body);
      if (m) pending.push([m[1], Date.now()]);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  setInterval(() => {
    parentPort.postMessage({ received, arrivals: pending });
    pending = [];
  }, 5);
  server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
`;
const arrivals = new Map<string, number>();
let received = 0;
const receiver = new Worker(RECEIVER, { eval: true });
const receiver_port = await new Promise<number>((resolve) => {
  receiver.on('message', (m: { port?: number; received?: number; arrivals?: [string, number][] }) => {
    if (m.port !== undefined) resolve(m.port);
    if (m.received !== undefined) received = m.received;
    for (const [id, at] of m.arrivals ?? []) if (!arrivals.has(id)) arrivals.set(id, at);
  });
});
const receiver_url = `http://127.0.0.1:${receiver_port}`;

const db = await benchDatabase('moneta-bench-webhooks');
const child: ChildProcess = spawn(
  process.execPath,
  [
    // BENCH_CPU_PROF=DIR writes a V8 CPU profile of the Moneta process there.
    ...(process.env.BENCH_CPU_PROF ? [`--cpu-prof`, `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []),
    path.join(HERE, '../../packages/server/bin/run-ts.js'),
    path.join(HERE, '../server.ts'),
    'moneta',
    db.url,
    'webhooks',
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const ready = await new Promise<string>((resolve, reject) => {
  let out = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
    const m = /READY (\S+) (\S+)/.exec(out);
    if (m) resolve(m[0]);
  });
  child.on('exit', (code) => reject(new Error(`moneta exited with ${code}`)));
});
const [, intents_url, key] = ready.split(' ') as [string, string, string];
const api = new URL(intents_url).origin;
const pool = new pg.Pool({ connectionString: db.url, max: 4 });

async function post(path_: string, form: string): Promise<Record<string, unknown>> {
  const res = await fetch(api + path_, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  const body = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200) throw new Error(`${path_}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

const endpoints: string[] = [];
for (let i = 0; i < ENDPOINTS; i += 1) {
  const we = await post(
    '/v1/webhook_endpoints',
    `url=${encodeURIComponent(`${receiver_url}/hook/${i}`)}&enabled_events[]=*`,
  );
  endpoints.push(we.id as string);
}
const merchant_id = (
  await pool.query('SELECT merchant_id FROM webhook_endpoints WHERE id = $1', [endpoints[0]])
).rows[0].merchant_id as string;

async function waitFor(what: string, done: () => boolean, limit_ms: number): Promise<void> {
  const deadline = Date.now() + limit_ms;
  let next_report_ms = Date.now() + 5_000;
  while (!done()) {
    if (Date.now() > next_report_ms) {
      next_report_ms += 5_000;
      process.stderr.write(`  waiting for ${what}: ${received} requests received so far\n`);
    }
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A backlog of events committed at once, drained by the dispatcher to every endpoint. */
async function throughput(run: number): Promise<number> {
  const before = received;
  await pool.query(
    `INSERT INTO events (id, merchant_id, livemode, type, object_id, data)
     SELECT 'evt_B' || lpad($3::text, 3, '0') || lpad(i::text, 22, '0'), $1, false, 'bench.event', 'obj_' || i,
            jsonb_build_object('object', jsonb_build_object('id', 'obj_' || i, 'object', 'bench', 'n', i))
       FROM generate_series(1, $2) AS i`,
    [merchant_id, BACKLOG, run],
  );
  const started = performance.now();
  await waitFor('the backlog to drain', () => received - before >= BACKLOG * ENDPOINTS, 600_000);
  return (BACKLOG * ENDPOINTS) / ((performance.now() - started) / 1000);
}

/** Plain POSTs of an event's body to the same receiver, with the dispatcher's connection count. */
async function bare(): Promise<number> {
  const body = JSON.stringify({
    id: 'evt_BARE',
    object: 'event',
    type: 'bench.event',
    data: { object: { id: 'x' } },
  });
  const result = await autocannon({
    url: `${receiver_url}/bare`,
    method: 'POST',
    connections: ENDPOINTS * PER_ENDPOINT,
    duration: 5,
    headers: { 'content-type': 'application/json' },
    body,
  });
  return result.requests.average;
}

/** Intents created at RATE/s for SECONDS; commit-to-arrival of their events at one endpoint. */
async function latency(): Promise<{ p50_ms: number; p99_ms: number; max_ms: number; events: number }> {
  const since = new Date();
  // Evenly paced (autocannon's rate limit sends each second's share in a burst).
  const url = new URL(intents_url);
  const result = await openLoop({
    origin: url.origin,
    path: url.pathname,
    headers: () => ({ authorization: `Bearer ${key}`, 'content-type': 'application/x-www-form-urlencoded' }),
    body: 'amount=1000&currency=usd',
    rate_per_s: RATE,
    seconds: SECONDS,
    warmup_seconds: 0,
    max_connections: 20,
  });
  if (result.non2xx + result.errors + result.shed > 0) {
    throw new Error(`${result.non2xx + result.errors + result.shed} intents were refused or not sent`);
  }
  const { rows } = await pool.query(
    `SELECT id, (extract(epoch FROM created_at) * 1000)::float8 AS at_ms FROM events
      WHERE type = 'payment_intent.created' AND created_at >= $1`,
    [since],
  );
  await waitFor('every event to arrive', () => rows.every((r) => arrivals.has(r.id as string)), 60_000);
  // Where the time goes: commit to fan-out, fan-out to the attempt's record.
  const { rows: split } = await pool.query(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.dispatched_at - e.created_at)) * 1000 AS to_fan_out_p50_ms,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM e.dispatched_at - e.created_at)) * 1000 AS to_fan_out_p99_ms,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - e.dispatched_at)) * 1000 AS to_record_p50_ms
       FROM events e JOIN webhook_deliveries d ON d.event_id = e.id
      WHERE e.type = 'payment_intent.created' AND e.created_at >= $1`,
    [since],
  );
  console.log(
    `  commit to fan-out p50 ${Number(split[0].to_fan_out_p50_ms).toFixed(0)} ms, p99 ${Number(split[0].to_fan_out_p99_ms).toFixed(0)} ms; fan-out to recorded attempt p50 ${Number(split[0].to_record_p50_ms).toFixed(0)} ms`,
  );
  const lags = rows
    .map((r) => Math.max(0, arrivals.get(r.id as string)! - (r.at_ms as number)))
    .sort((a, b) => a - b);
  const at = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))]!;
  return { p50_ms: at(0.5), p99_ms: at(0.99), max_ms: lags.at(-1)!, events: rows.length };
}

const results = { moneta: [] as number[], bare: [] as number[] };
let lat: Awaited<ReturnType<typeof latency>> | null = null;
try {
  // Latency first, on one endpoint (a merchant with one webhook), while the tables are as a
  // running system keeps them; then throughput, which leaves hundreds of thousands of rows.
  for (const id of endpoints.slice(1)) await post(`/v1/webhook_endpoints/${id}`, 'disabled=true');
  lat = await latency();
  console.log(
    `latency at ${RATE} events/s for ${SECONDS} s (${lat.events} events): p50 ${lat.p50_ms.toFixed(0)} ms  p99 ${lat.p99_ms.toFixed(0)} ms  max ${lat.max_ms.toFixed(0)} ms`,
  );
  for (const id of endpoints.slice(1)) await post(`/v1/webhook_endpoints/${id}`, 'disabled=false');
  for (let run = 1; run <= RUNS; run += 1) {
    const m = await throughput(run);
    const b = await bare();
    results.bare.push(b);
    results.moneta.push(m);
    console.log(
      `run ${run}: dispatcher ${m.toFixed(0)} deliveries/s   bare POSTs ${b.toFixed(0)}/s   ratio ${(m / b).toFixed(2)}`,
    );
  }
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  await pool.end();
  await receiver.terminate();
  await db.close();
}

const summary = {
  backlog_events: BACKLOG,
  endpoints: ENDPOINTS,
  runs: RUNS,
  dispatcher_median_deliveries_per_s: median(results.moneta),
  bare_post_median_per_s: median(results.bare),
  ratio: median(results.moneta) / median(results.bare),
  per_run: results,
  latency_rate_per_s: RATE,
  latency_seconds: SECONDS,
  latency: lat,
};
console.log('');
console.log(
  `dispatcher: median ${summary.dispatcher_median_deliveries_per_s.toFixed(0)} deliveries/s (target ≥ 2,000); bare POSTs ${summary.bare_post_median_per_s.toFixed(0)}/s; ratio ${summary.ratio.toFixed(2)}`,
);
console.log(`commit to delivery at ${RATE}/s: p99 ${lat?.p99_ms.toFixed(0)} ms (target ≤ 100 ms)`);
await writeResults('webhooks', db.kind, summary);
