/**
 * Ledger throughput on a real PostgreSQL (embedded unless DATABASE_URL is set), with
 * synchronous_commit on. Each run measures, in this order:
 *   baseline  single-row INSERT commits from 20 concurrent callers (the per-commit limit)
 *   single    createTransfers with one transfer per call from 20 callers over 1,000 accounts
 *   hot       the same, with one hot account on the debit side of every transfer
 *   batch     createTransfers with 8,189 transfers per call, 2 callers
 * and prints the medians over the runs and the ratios the ledger issue sets as targets.
 *
 *   npm run bench:ledger        BENCH_RUNS=3 BENCH_SECONDS=5
 */
import { migrate } from '../../packages/server/src/db/migrate.ts';
import { createPool, type Pool } from '../../packages/server/src/db/pool.ts';
import {
  DEFAULT_LEDGER_OPTIONS,
  Ledger,
  ledgerId,
  MAX_BATCH,
  type TransferInput,
} from '../../packages/server/src/ledger/index.ts';
import { accountInput, transferInput } from '../../packages/server/test/ledger-fixtures.ts';
import { benchDatabase, median, writeResults } from '../lib.ts';
import { randomPair } from './pairs.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CALLERS = 20;
/** Comma-separated subset of baseline,single,hot,batch (for profiling one of them). */
const ONLY = new Set((process.env.BENCH_ONLY ?? 'baseline,single,hot,batch').split(','));
const ACCOUNTS = 1_000;

/** Runs `callers` loops of `step` for SECONDS; returns completed units per second. */
async function timed(callers: number, step: () => Promise<number>): Promise<number> {
  const deadline = Date.now() + SECONDS * 1000;
  const started = process.hrtime.bigint();
  let done = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (Date.now() < deadline) {
        // Not `done += await step()`: that reads `done` before the await and loses the
        // other callers' counts.
        const n = await step();
        done += n;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return done / seconds;
}

function transfer(debit: string, credit: string): TransferInput {
  return transferInput(debit, credit, 1n + BigInt(Math.floor(Math.random() * 10_000)));
}

async function setup(pool: Pool, ledger: Ledger): Promise<string[]> {
  await pool.query('CREATE TABLE IF NOT EXISTS bench_commits (id bigserial PRIMARY KEY, v bigint NOT NULL)');
  const ids = Array.from({ length: ACCOUNTS + 1 }, () => ledgerId());
  const results = await ledger.createAccounts(ids.map((id) => accountInput(0, { id })));
  if (results.some((r) => r !== 'ok')) throw new Error('account setup failed');
  return ids;
}

async function main() {
  const db = await benchDatabase('moneta-bench-ledger');
  let copy_pool: ReturnType<typeof createPool> | null = null;
  const pool = createPool({
    connection_string: db.url,
    max_connections: CALLERS + 4,
    application_name: 'bench-ledger',
  });
  const runs: Record<'baseline' | 'single' | 'hot' | 'batch', number[]> = {
    baseline: [],
    single: [],
    hot: [],
    batch: [],
  };
  try {
    await migrate(pool);
    copy_pool = createPool({
      connection_string: db.url,
      max_connections: 2,
      application_name: 'bench-ledger-copy',
      pipeline: false,
    });
    const ledger = new Ledger(pool, {
      ...DEFAULT_LEDGER_OPTIONS,
      copy_pool: process.env.BENCH_NO_COPY ? undefined : copy_pool,
      max_in_flight: Number(process.env.BENCH_IN_FLIGHT ?? DEFAULT_LEDGER_OPTIONS.max_in_flight),
    });
    const ids = await setup(pool, ledger);
    const hot = ids[ACCOUNTS]!;
    const spread = ids.slice(0, ACCOUNTS);
    const pick = () => spread[Math.floor(Math.random() * ACCOUNTS)]!;
    const pair = () => randomPair(spread);
    for (let run = 1; run <= RUNS; run += 1) {
      const skip = async () => Number.NaN;
      const baseline = !ONLY.has('baseline')
        ? await skip()
        : await timed(CALLERS, async () => {
            await pool.query('INSERT INTO bench_commits (v) VALUES ($1)', [run]);
            return 1;
          });
      const single = !ONLY.has('single')
        ? await skip()
        : await timed(CALLERS, async () => {
            const [r] = await ledger.createTransfers([transfer(...pair())]);
            if (r !== 'ok') throw new Error(`transfer failed: ${r}`);
            return 1;
          });
      const hot_rate = !ONLY.has('hot')
        ? await skip()
        : await timed(CALLERS, async () => {
            const [r] = await ledger.createTransfers([transfer(hot, pick())]);
            if (r !== 'ok') throw new Error(`transfer failed: ${r}`);
            return 1;
          });
      const batch = !ONLY.has('batch')
        ? await skip()
        : await timed(2, async () => {
            const results = await ledger.createTransfers(
              Array.from({ length: MAX_BATCH }, () => transfer(...pair())),
            );
            if (results.some((r) => r !== 'ok')) throw new Error('batch transfer failed');
            return MAX_BATCH;
          });
      runs.baseline.push(baseline);
      runs.single.push(single);
      runs.hot.push(hot_rate);
      runs.batch.push(batch);
      console.log(
        `run ${run}: baseline ${baseline.toFixed(0)} commits/s  single ${single.toFixed(0)}/s  hot ${hot_rate.toFixed(0)}/s  batch ${batch.toFixed(0)}/s`,
      );
    }
  } finally {
    await copy_pool?.end();
    await pool.end();
    await db.close();
  }
  const summary = {
    runs: RUNS,
    seconds_per_measure: SECONDS,
    baseline_commits_per_s: median(runs.baseline),
    single_transfers_per_s: median(runs.single),
    hot_transfers_per_s: median(runs.hot),
    batch_transfers_per_s: median(runs.batch),
    single_vs_baseline: median(runs.single) / median(runs.baseline),
    // Paired per run: this machine's commit rate drifts a lot between runs.
    single_vs_baseline_per_run: runs.single.map((x, i) => x / runs.baseline[i]!),
    hot_vs_single: median(runs.hot) / median(runs.single),
  };
  console.log('');
  console.log(
    `baseline (single-row commits, 20 callers): median ${summary.baseline_commits_per_s.toFixed(0)}/s`,
  );
  console.log(
    `single transfers, 20 callers, 1,000 accounts: median ${summary.single_transfers_per_s.toFixed(0)}/s = ${summary.single_vs_baseline.toFixed(2)}× baseline (target ≥ 1.5×)`,
  );
  console.log(`  per run (paired): ${summary.single_vs_baseline_per_run.map((r) => r.toFixed(2)).join(' ')}`);
  console.log(
    `hot account on every transfer: median ${summary.hot_transfers_per_s.toFixed(0)}/s = ${summary.hot_vs_single.toFixed(2)}× spread (target ≥ 0.8×)`,
  );
  console.log(
    `batch API (8,189 a call): median ${summary.batch_transfers_per_s.toFixed(0)}/s (target ≥ 100,000/s)`,
  );
  await writeResults('ledger', db.kind, summary);
}

await main();
