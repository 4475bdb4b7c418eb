import { type Runner, run, type Task, type TaskList, Logger as WorkerLogger } from 'graphile-worker';
import type { Logger } from 'pino';
import type { Pool } from '../db/pool.ts';
import { reapEvents, reapHandledEvents } from '../events/index.ts';
import type { IdempotencyEngine } from '../idempotency/index.ts';
import { IncrementalVerifier, LEDGER_CHECKS, type Ledger } from '../ledger/index.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { Janitor } from '../payments/index.ts';
import type { Vault } from '../vault/index.ts';

/**
 * Durable background jobs on PostgreSQL (graphile-worker): cron schedules are
 * deduplicated across worker processes, jobs survive restarts and are retried.
 */
export interface JobDeps {
  pool: Pool;
  engine: IdempotencyEngine;
  ledger: Ledger;
  vault: Vault;
  janitor: Janitor | null;
  log: Logger;
  metrics: Metrics;
  concurrency: number;
  idempotency_retention_hours: number;
}

/** Requests one completer run may finish; the rest wait for the next minute. */
const COMPLETER_BATCH = 200;
/** Pending transfers released per transaction, and transactions per run. */
const EXPIRY_BATCH = 1_000;
const MAX_EXPIRY_BATCHES = 50;
/** Batches of 5,000 old events deleted per run. */
const MAX_REAP_BATCHES = 20;
/** Batches of 1,000 expired CVCs destroyed per run. */
const MAX_CVC_BATCHES = 50;

export const CRONTAB = [
  // Finish requests abandoned between atomic phases (lock older than the lock timeout).
  '* * * * * idempotency_completer ?max=1&jobKey=idempotency_completer',
  // Delete idempotency keys past their retention.
  '17 * * * * idempotency_reaper ?max=3&jobKey=idempotency_reaper',
  // Release pending ledger transfers past their timeout (posts check the timeout themselves).
  '* * * * * ledger_expire_pending ?max=1&jobKey=ledger_expire_pending',
  // Recheck the ledger's invariants: the totals and the next chunk of accounts.
  '* * * * * ledger_verify ?max=1&jobKey=ledger_verify',
  // Settle acquirer calls of unknown outcome by inquiry (Kill Bill's janitor).
  '* * * * * payments_janitor ?max=1&jobKey=payments_janitor',
  // Drop events past their 30 days, with their deliveries and attempts, and NATS consumers'
  // handled marks past the streams' max_age.
  '41 * * * * events_reaper ?max=1&jobKey=events_reaper',
  // Destroy CVCs no authorization used within their time (PCI DSS 3.3.1.2).
  '* * * * * vault_expire_cvcs ?max=1&jobKey=vault_expire_cvcs',
].join('\n');

export function taskList(deps: JobDeps): TaskList {
  const verifier = new IncrementalVerifier(deps.pool);
  const measured =
    (name: string, fn: () => Promise<Record<string, unknown>>): Task =>
    async () => {
      try {
        const result = await fn();
        deps.metrics.jobs.inc({ task: name, outcome: 'ok' });
        deps.log.debug({ task: name, ...result }, 'job done');
      } catch (err) {
        deps.metrics.jobs.inc({ task: name, outcome: 'error' });
        throw err;
      }
    };
  return {
    idempotency_completer: measured('idempotency_completer', async () => ({
      completed: await deps.engine.completeAbandoned(COMPLETER_BATCH),
    })),
    idempotency_reaper: measured('idempotency_reaper', async () => ({
      deleted: await deps.engine.reap(deps.idempotency_retention_hours),
    })),
    ledger_expire_pending: measured('ledger_expire_pending', async () => {
      let expired = 0;
      for (let batch = 0; batch < MAX_EXPIRY_BATCHES; batch += 1) {
        const n = await deps.ledger.expirePending(EXPIRY_BATCH);
        expired += n;
        if (n < EXPIRY_BATCH) break;
      }
      deps.metrics.ledger_expired.inc(expired);
      return { expired };
    }),
    payments_janitor: measured('payments_janitor', async () => {
      if (!deps.janitor) return { skipped: 'no acquirers configured' };
      const result = await deps.janitor.run();
      deps.metrics.payments_settled.inc(result.settled);
      deps.metrics.payments_needing_review.set(await deps.janitor.needingReview());
      return result;
    }),
    events_reaper: measured('events_reaper', async () => ({
      deleted: await reapEvents(deps.pool, MAX_REAP_BATCHES),
      handled_marks_deleted: await reapHandledEvents(deps.pool, MAX_REAP_BATCHES),
    })),
    vault_expire_cvcs: measured('vault_expire_cvcs', async () => ({
      destroyed: await deps.vault.expireCvcs(MAX_CVC_BATCHES),
    })),
    ledger_verify: measured('ledger_verify', async () => {
      const result = await verifier.step();
      deps.metrics.ledger_verified_accounts.inc(result.checked_accounts);
      for (const check of LEDGER_CHECKS) {
        deps.metrics.ledger_violations.set(
          { check },
          result.violations.filter((v) => v.check === check).length,
        );
      }
      if (result.violations.length > 0) {
        deps.log.error(
          { violations: result.violations.slice(0, 10) },
          'ledger invariant violated: run `moneta ledger verify`',
        );
      }
      return { checked_accounts: result.checked_accounts, violations: result.violations.length };
    }),
  };
}

function workerLogger(log: Logger): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const fields = { component: 'jobs', ...scope, ...meta };
    if (level === 'error') log.error(fields, message);
    else if (level === 'warning') log.warn(fields, message);
    else if (level === 'info') log.debug(fields, message);
    else log.trace(fields, message);
  });
}

export async function startJobs(deps: JobDeps): Promise<Runner> {
  return run({
    pgPool: deps.pool,
    concurrency: deps.concurrency,
    noHandleSignals: true,
    pollInterval: 1000,
    taskList: taskList(deps),
    crontab: CRONTAB,
    logger: workerLogger(deps.log),
  });
}
