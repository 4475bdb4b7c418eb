import { type Runner, run, type Task, type TaskList, Logger as WorkerLogger } from 'graphile-worker';
import type { Logger } from 'pino';
import type { Pool } from '../db/pool.ts';
import type { IdempotencyEngine } from '../idempotency/index.ts';
import type { Metrics } from '../ops/metrics.ts';

/**
 * Durable background jobs on PostgreSQL (graphile-worker): cron schedules are
 * deduplicated across worker processes, jobs survive restarts and are retried.
 */
export interface JobDeps {
  pool: Pool;
  engine: IdempotencyEngine;
  log: Logger;
  metrics: Metrics;
  concurrency: number;
  idempotency_retention_hours: number;
}

/** Requests one completer run may finish; the rest wait for the next minute. */
const COMPLETER_BATCH = 200;

export const CRONTAB = [
  // Finish requests abandoned between atomic phases (lock older than the lock timeout).
  '* * * * * idempotency_completer ?max=1&jobKey=idempotency_completer',
  // Delete idempotency keys past their retention.
  '17 * * * * idempotency_reaper ?max=3&jobKey=idempotency_reaper',
].join('\n');

export function taskList(deps: JobDeps): TaskList {
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
