/**
 * What one batch of single transfers costs PostgreSQL: one caller sends batches of k
 * transfers one after the other (nothing overlaps), and the CPU time of the pool's backends
 * (read from /proc in nanoseconds, so PostgreSQL must run on this machine: embedded unless
 * DATABASE_URL is set) is divided by the batches. The baseline, measured the same way in
 * the same run, is a single-row INSERT commit. A line through k = 10 and k = 100 splits a
 * batch's cost into a part per transfer and a part per batch, which is what bounds the
 * single-transfer rate (see docs/ledger.md).
 *
 *   npm run bench:ledger-cost      BENCH_RUNS=3 BENCH_BATCHES=1000
 */
import { migrate } from '../../packages/server/src/db/migrate.ts';
import { createPool, type Pool } from '../../packages/server/src/db/pool.ts';
import { DEFAULT_LEDGER_OPTIONS, Ledger, ledgerId } from '../../packages/server/src/ledger/index.ts';
import { accountInput, transferInput } from '../../packages/server/test/ledger-fixtures.ts';
import { type Classify, cpuSince, cpuSnapshot } from '../cpu.ts';
import { benchDatabase, median, writeResults } from '../lib.ts';
import { randomPair } from './pairs.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BATCHES = Number(process.env.BENCH_BATCHES ?? 1_000);
const SIZES = [1, 10, 20, 50, 100] as const;
const ACCOUNTS = 1_000;
const APP = 'bench-ledger-cost';

/** The pool's backends, as a party for bench/cpu.ts. */
async function backends(pool: Pool): Promise<Classify> {
  const { rows } = await pool.query(
    'SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
    [APP],
  );
  const pids = new Set(rows.map((r) => r.pid as number));
  return (p) => (pids.has(p.pid) ? 'backends' : null);
}

/**
 * Backend CPU (µs) per call of `step`, over BATCHES calls made one after the other. A
 * connection opened in between counts from its start; one closed in between is lost (the
 * pool keeps its few connections for longer than a measure takes).
 */
async function perCall(pool: Pool, step: () => Promise<void>): Promise<number> {
  const before = cpuSnapshot(await backends(pool));
  for (let i = 0; i < BATCHES; i += 1) await step();
  const after = cpuSnapshot(await backends(pool));
  if (!after.has('backends')) {
    throw new Error(
      'bench:ledger-cost reads the backends in /proc: run it with PostgreSQL on this machine (unset DATABASE_URL for the embedded one)',
    );
  }
  return ((cpuSince(before, after).backends ?? 0) * 1000) / BATCHES;
}

async function main() {
  const db = await benchDatabase('moneta-bench-ledger-cost');
  const pool = createPool({ connection_string: db.url, max_connections: 4, application_name: APP });
  const baseline_runs: number[] = [];
  const batch_runs = new Map<number, number[]>(SIZES.map((k) => [k, []]));
  try {
    await migrate(pool);
    await pool.query('CREATE TABLE bench_commits (id bigserial PRIMARY KEY, v bigint NOT NULL)');
    // One batch at a time: what a batch costs, without another overlapping it.
    const ledger = new Ledger(pool, { ...DEFAULT_LEDGER_OPTIONS, max_in_flight: 1 });
    const ids = Array.from({ length: ACCOUNTS }, () => ledgerId());
    if ((await ledger.createAccounts(ids.map((id) => accountInput(0, { id })))).some((r) => r !== 'ok')) {
      throw new Error('account setup failed');
    }
    const pair = () => randomPair(ids);
    for (let run = 1; run <= RUNS; run += 1) {
      baseline_runs.push(
        await perCall(pool, async () => {
          await pool.query('INSERT INTO bench_commits (v) VALUES ($1)', [run]);
        }),
      );
      for (const k of SIZES) {
        const us = await perCall(pool, async () => {
          const results = await ledger.createTransfers(
            Array.from({ length: k }, () => transferInput(...pair(), 7n)),
          );
          if (results.some((r) => r !== 'ok')) throw new Error(`transfer failed: ${results.join(',')}`);
        });
        batch_runs.get(k)!.push(us);
      }
      console.log(
        `run ${run}: baseline commit ${baseline_runs.at(-1)!.toFixed(0)} µs; batches of ${SIZES.map((k) => `${k}: ${batch_runs.get(k)!.at(-1)!.toFixed(0)}`).join(', ')} µs`,
      );
    }
  } finally {
    await pool.end();
    await db.close();
  }
  const at = (k: number) => median(batch_runs.get(k)!);
  const per_transfer_us = (at(100) - at(10)) / 90;
  const per_batch_us = at(10) - 10 * per_transfer_us;
  const baseline_us = median(baseline_runs);
  const summary = {
    runs: RUNS,
    batches_per_measure: BATCHES,
    baseline_commit_backend_us: baseline_us,
    batch_backend_us: Object.fromEntries(SIZES.map((k) => [k, at(k)])),
    per_transfer_backend_us: per_transfer_us,
    per_batch_backend_us: per_batch_us,
  };
  console.log('');
  console.log(`baseline: a single-row INSERT commit costs the backend ${baseline_us.toFixed(0)} µs (median)`);
  for (const k of SIZES) {
    console.log(
      `batch of ${String(k).padStart(3)}: ${at(k).toFixed(0).padStart(5)} µs = ${(at(k) / k).toFixed(1).padStart(6)} µs a transfer = ${(at(k) / k / baseline_us).toFixed(2)}× a baseline commit`,
    );
  }
  console.log(
    `fit through 10 and 100: ${per_transfer_us.toFixed(1)} µs per transfer + ${per_batch_us.toFixed(0)} µs per batch`,
  );
  await writeResults('ledger-cost', db.kind, summary);
}

await main();
