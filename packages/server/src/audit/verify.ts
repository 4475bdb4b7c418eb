import type { Queryable } from '../db/pool.ts';
import { assert } from '../lib/errors.ts';

/** A row that breaks the chain, and how. `seq` 0 means the chain head itself. */
export interface AuditFinding {
  seq: number;
  problem: string;
}

export interface VerifyAuditOptions {
  /** Rows read and rehashed per statement. */
  batch_size?: number;
  /** Called after each batch with the rows checked so far and the rows the chain should hold. */
  on_progress?: (checked: number, total: number) => void;
}

/** Most findings reported: one tampering often breaks many rows, and the first ones say where. */
export const MAX_FINDINGS = 100;
const DEFAULT_BATCH_SIZE = 5_000;
const MAX_BATCH_SIZE = 100_000;
const GENESIS_HASH = Buffer.alloc(32);

interface Head {
  /** null when the head row is gone. */
  seq: number | null;
  hash: Buffer | null;
  /** The highest seq in the table, read in the same snapshot as the head. */
  max_seq: number;
}

interface Row {
  seq: number;
  prev_hash: Buffer;
  hash: Buffer;
  /** The stored hash equals sha256(prev_hash || content), recomputed by the database. */
  hash_ok: boolean;
}

/**
 * Walks the chain in seq order, in batches of `batch_size`, recomputing every hash in the
 * database with the same function the insert trigger used. Reports an edited row (hash does
 * not match content), a broken link (prev_hash is not the previous row's hash), deleted rows
 * (a gap in seq) and a head that does not match the last row (tail deleted or head moved).
 * Rows appended while it runs are left for the next run: the walk ends at the head it read first.
 */
export async function verifyAudit(db: Queryable, opts: VerifyAuditOptions = {}): Promise<AuditFinding[]> {
  const batch_size = opts.batch_size ?? DEFAULT_BATCH_SIZE;
  assert(
    Number.isInteger(batch_size) && batch_size > 0 && batch_size <= MAX_BATCH_SIZE,
    'batch size in range',
  );
  const head = await readHead(db);
  const end = Math.max(head.seq ?? 0, head.max_seq);
  const walk = new ChainWalk(end, head.seq);
  // Seqs are unique and within (0, end], so ceil(end / batch_size) full batches cover them
  // and the one after is short: the loop always ends by `break`.
  const max_batches = Math.ceil(end / batch_size) + 1;
  let covered = false;
  for (let batch = 0; batch < max_batches && !walk.full; batch += 1) {
    const rows = await readRows(db, walk.next_seq - 1, end, batch_size);
    for (const row of rows) walk.check(row);
    opts.on_progress?.(walk.checked, end);
    if (rows.length < batch_size) {
      covered = true;
      break;
    }
  }
  assert(covered || walk.full, 'the walk reaches the end of the chain within its batch bound');
  if (!walk.full) walk.finish(head);
  return walk.findings;
}

/** The head and the table's highest seq in one statement: one snapshot, so they must agree. */
async function readHead(db: Queryable): Promise<Head> {
  const { rows } = await db.query(
    `SELECT h.seq, h.hash, (SELECT max(seq) FROM audit_log) AS max_seq
       FROM (VALUES (true)) AS one (id) LEFT JOIN audit_chain_head h ON h.id = one.id`,
  );
  assert(rows.length === 1, 'the head query returns one row');
  const row = rows[0];
  return {
    seq: row.seq === null ? null : toSeq(row.seq),
    hash: row.hash,
    max_seq: row.max_seq === null ? 0 : toSeq(row.max_seq),
  };
}

async function readRows(db: Queryable, after: number, end: number, limit: number): Promise<Row[]> {
  const { rows } = await db.query(
    `SELECT seq, prev_hash, hash,
            hash = sha256(prev_hash || moneta_audit_content(seq, at, actor, action, outcome, origin,
                                                            merchant_id, object_type, object_id, details)) AS hash_ok
       FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`,
    [after, end, limit],
  );
  return rows.map((r) => ({ seq: toSeq(r.seq), prev_hash: r.prev_hash, hash: r.hash, hash_ok: r.hash_ok }));
}

/** bigint arrives as a string; a seq stays far below 2^53. */
function toSeq(value: string | number): number {
  const n = Number(value);
  assert(Number.isSafeInteger(n), 'audit seq is a safe integer');
  return n;
}

/** The walk's state: the seq and prev_hash the next row must have, and what was found. */
class ChainWalk {
  readonly findings: AuditFinding[] = [];
  next_seq = 1;
  checked = 0;
  private prev_hash: Buffer = GENESIS_HASH;
  /** The stored hash of the row the head points at, once the walk has passed it. */
  private head_row_hash: Buffer | null;

  constructor(
    private readonly end: number,
    private readonly head_seq: number | null,
  ) {
    this.head_row_hash = head_seq === 0 ? GENESIS_HASH : null;
  }

  get full(): boolean {
    return this.findings.length >= MAX_FINDINGS;
  }

  check(row: Row): void {
    assert(row.seq >= this.next_seq && row.seq <= this.end, 'rows come in seq order within the walk');
    if (row.seq > this.next_seq) {
      this.report(this.next_seq, missing(this.next_seq, row.seq - 1, 'deleted?'));
    } else if (!row.prev_hash.equals(this.prev_hash)) {
      // Checked only without a gap before the row: after one, the row it pointed at is gone.
      this.report(row.seq, brokenLink(row.seq));
    }
    if (!row.hash_ok) this.report(row.seq, 'hash does not match its content (edited?)');
    if (row.seq === this.head_seq) this.head_row_hash = row.hash;
    this.next_seq = row.seq + 1;
    this.prev_hash = row.hash;
    this.checked += 1;
  }

  /** The head must point at the last row and carry its hash. */
  finish(head: Head): void {
    if (head.seq === null) {
      this.report(0, 'the chain head (audit_chain_head) is missing');
      return;
    }
    if (head.max_seq > head.seq) {
      this.report(head.seq + 1, `past the chain head at row ${head.seq} (head moved back?)`);
    }
    if (this.next_seq <= this.end) {
      const why = `the chain head is at row ${head.seq}: tail deleted?`;
      this.report(this.next_seq, missing(this.next_seq, this.end, why));
    } else if (this.head_row_hash !== null && !this.head_row_hash.equals(head.hash ?? Buffer.alloc(0))) {
      this.report(head.seq, 'hash differs from the chain head (row or head edited?)');
    }
  }

  private report(seq: number, problem: string): void {
    if (!this.full) this.findings.push({ seq, problem });
  }
}

function missing(first: number, last: number, why: string): string {
  return first === last ? `missing (${why})` : `missing, and so are the rows up to ${last} (${why})`;
}

function brokenLink(seq: number): string {
  return seq === 1
    ? 'prev_hash is not the genesis hash (chain start edited?)'
    : `prev_hash does not match the hash of row ${seq - 1} (one of them edited?)`;
}
