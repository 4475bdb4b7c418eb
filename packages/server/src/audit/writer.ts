import type { Queryable } from '../db/pool.ts';
import { assert, serviceUnavailable } from '../lib/errors.ts';
import { AUDIT_COLUMNS, type AuditEntry, auditValues, AUDIT_CASTS as CASTS } from './log.ts';

/**
 * Appends entries that stand on their own (not part of a caller's transaction) in batches.
 *
 * Every append takes the chain's head lock until its transaction commits, so appends one
 * by one form a line that moves at one commit (one WAL flush) per entry: about 2,000 a
 * second, fewer under load, and every card use waited in it. Here the entries that arrive
 * while a batch commits go together in the next one: one statement, one head lock, one
 * commit for up to `max_batch` entries. `append` resolves once its entry is durable, so a
 * caller that audits before acting still acts only after the record exists.
 */
export interface AuditWriterOptions {
  /** Entries per statement. */
  max_batch?: number;
  /** Entries waiting beyond which `append` refuses (503) instead of queueing without bound. */
  max_queued?: number;
}

interface Waiting {
  values: (string | null)[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

const DEFAULT_MAX_BATCH = 512;
const DEFAULT_MAX_QUEUED = 20_000;

const BATCH_INSERT = {
  name: 'moneta_audit_insert_batch',
  // WITH ORDINALITY: the rows take their seq in the order they were appended.
  text: `INSERT INTO audit_log (${AUDIT_COLUMNS})
         SELECT ${AUDIT_COLUMNS.split(', ')
           .map((c) => `u.${c}`)
           .join(', ')}
           FROM unnest(${CASTS.map((c, i) => `$${i + 1}::${c}[]`).join(', ')})
                WITH ORDINALITY AS u(${AUDIT_COLUMNS}, n)
          ORDER BY u.n`,
};

export class AuditWriter {
  private queue: Waiting[] = [];
  private writing = false;
  /** Statements sent; tests read it to see that entries share them. */
  batches = 0;

  constructor(
    private readonly db: Queryable,
    private readonly opts: AuditWriterOptions = {},
  ) {}

  append(entry: AuditEntry): Promise<void> {
    const values = auditValues(entry); // a bad entry fails its caller now, never its batch
    if (this.queue.length >= (this.opts.max_queued ?? DEFAULT_MAX_QUEUED)) {
      return Promise.reject(serviceUnavailable('The audit log is behind; retry in a moment.'));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ values, resolve, reject });
      if (!this.writing) {
        this.writing = true;
        // The next turn: appends made in this one join the first batch.
        setImmediate(() => void this.drain());
      }
    });
  }

  /** Writes batches until the queue is empty; one batch at a time (they would queue on the head lock anyway). */
  private async drain(): Promise<void> {
    const max_batch = this.opts.max_batch ?? DEFAULT_MAX_BATCH;
    // Bounded per call: a queue that keeps refilling is carried on in a later turn of the event
    // loop (the finally below), so one drain never holds the process for good.
    const max_rounds = Math.ceil((this.opts.max_queued ?? DEFAULT_MAX_QUEUED) / max_batch) + 1;
    try {
      for (let round = 0; round < max_rounds && this.queue.length > 0; round += 1) {
        const batch = this.queue.splice(0, max_batch);
        await this.write(batch);
      }
    } finally {
      this.writing = false;
      if (this.queue.length > 0) {
        this.writing = true;
        setImmediate(() => void this.drain());
      }
    }
  }

  private async write(batch: Waiting[]): Promise<void> {
    const columns = CASTS.map((_, c) => batch.map((w) => w.values[c]!));
    try {
      this.batches += 1;
      const result = await this.db.query({ ...BATCH_INSERT, values: columns });
      assert(result.rowCount === batch.length, 'an audit batch adds one row per entry');
      for (const w of batch) w.resolve();
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }
}
