/**
 * Append-only journal (one JSON event per line): the simulator's durable truth. Memory is
 * rebuilt from it at start.
 *
 * Group commit: events appended during one event-loop turn (and those that arrive while an
 * fsync is running) leave in one write and one fdatasync, so thousands of requests per second
 * cost a few hundred fsyncs, not thousands. Event n is durable once `durable(n)` resolves; a
 * response must not be sent before that, so a kill -9 (or a power cut) after an answer never
 * loses what the answer reported.
 *
 * Replay ignores a torn tail: the bytes after the last newline (an unfinished write), and
 * damaged lines when no valid line follows them (a crash may leave zeros or a partial block at
 * the end). They belong to a write that was never acknowledged, so they are cut off before new
 * events are appended. A damaged line *followed by* valid ones is real corruption: refuse to
 * start rather than silently forget events.
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import path from 'node:path';
import { assert } from './errors.ts';
import { MAX_JOURNAL_BACKLOG, MAX_JOURNAL_LINE_BYTES } from './limits.ts';

const READ_CHUNK_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;
const RESOLVED = Promise.resolve();

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface ReplayResult {
  events: number;
  /** Bytes of torn tail cut off. */
  truncated_bytes: number;
}

export class Journal {
  private queue: string[] = [];
  private appended: number;
  private durableSeq: number;
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private failure: Error | null = null;
  private closed = false;
  /** fsyncs done; lets tests check that concurrent appends share them. */
  syncs = 0;

  private constructor(
    private readonly fh: FileHandle,
    replayed: number,
    private readonly onFailure: (err: Error) => void,
  ) {
    this.appended = replayed;
    this.durableSeq = replayed;
  }

  /**
   * Opens (creating it if needed) and replays the journal: `apply` gets every event in order
   * with its sequence number (1-based) and throws when one contradicts the state so far.
   */
  static async open(
    file: string,
    apply: (event: unknown, seq: number) => void,
    onFailure: (err: Error) => void,
  ): Promise<{ journal: Journal; replay: ReplayResult }> {
    // O_CREAT without O_EXCL, then fsync the directory so a new file's entry survives a crash.
    const fh = await open(file, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
    try {
      await fsyncDirectory(path.dirname(file));
      const { size } = await fh.stat();
      const { events, validBytes } = await replayFile(fh, file, apply);
      if (validBytes < size) {
        await fh.truncate(validBytes);
        await fh.datasync();
      }
      return {
        journal: new Journal(fh, events, onFailure),
        replay: { events, truncated_bytes: size - validBytes },
      };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** False when a new event should be refused (failed, closed, or too far behind the disk). */
  accepting(): boolean {
    return this.failure === null && !this.closed && this.appended - this.durableSeq < MAX_JOURNAL_BACKLOG;
  }

  get failed(): Error | null {
    return this.failure;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Queues one event; returns its sequence number. Callers check `accepting()` first. */
  append(event: object): number {
    assert(this.accepting(), 'journal append while not accepting');
    this.queue.push(`${JSON.stringify(event)}\n`);
    this.appended += 1;
    this.schedule();
    return this.appended;
  }

  /** Resolves once event `seq` is on disk; rejects if the journal failed first. */
  durable(seq: number): Promise<void> {
    assert(seq <= this.appended, 'waiting for an event never appended');
    if (seq <= this.durableSeq) return RESOLVED;
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }

  /** Resolves once everything appended so far is on disk (reads wait for it before answering). */
  barrier(): Promise<void> {
    return this.durable(this.appended);
  }

  /** Flushes what is queued, then closes the file. Appending afterwards is a bug. */
  async close(): Promise<void> {
    if (this.closed) return;
    // Closed first: from here `accepting()` is false, so the barrier covers every event.
    this.closed = true;
    await this.barrier().catch(() => undefined);
    if (this.flushing) await this.flushing;
    await this.fh.close();
  }

  private schedule(): void {
    if (this.scheduled || this.flushing !== null || this.failure !== null) return;
    this.scheduled = true;
    // setImmediate, not a microtask: every request handled in this turn joins the same fsync.
    setImmediate(() => {
      this.scheduled = false;
      const run = this.flush();
      this.flushing = run;
      void run.then(() => {
        this.flushing = null;
        if (this.queue.length > 0) this.schedule();
      });
    });
  }

  /** Writes and fsyncs the queued lines; never rejects (a failure is recorded instead). */
  private async flush(): Promise<void> {
    if (this.queue.length === 0 || this.failure !== null) return;
    const lines = this.queue;
    this.queue = [];
    const upto = this.appended;
    try {
      await writeAll(this.fh, Buffer.from(lines.join(''), 'utf8'));
      await this.fh.datasync();
      this.syncs += 1;
      this.durableSeq = upto;
      this.release(upto);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private release(upto: number): void {
    const waiting: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.seq <= upto) w.resolve();
      else waiting.push(w);
    }
    this.waiters = waiting;
  }

  /**
   * After a failed write or fsync the file's content is unknown (and Linux may drop the dirty
   * pages, so retrying the fsync would lie): stop for good and let the owner restart and replay.
   */
  private fail(err: Error): void {
    this.failure = err;
    this.queue = [];
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
    this.onFailure(err);
  }
}

async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  // Bounded: every pass writes at least one byte or throws.
  while (offset < data.length) {
    const { bytesWritten } = await fh.write(data, offset, data.length - offset, null);
    assert(bytesWritten > 0, 'write made no progress');
    offset += bytesWritten;
  }
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function parseLine(line: Buffer): object | null {
  try {
    const value: unknown = JSON.parse(line.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** Streams the file line by line; returns the event count and where the valid prefix ends. */
async function replayFile(
  fh: FileHandle,
  file: string,
  apply: (event: unknown, seq: number) => void,
): Promise<{ events: number; validBytes: number }> {
  const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  let carry = Buffer.alloc(0);
  let carryOffset = 0;
  let position = 0;
  let events = 0;
  let validBytes = 0;
  let firstDamaged: number | null = null;

  for (;;) {
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const data =
      carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
    let start = 0;
    for (let nl = data.indexOf(NEWLINE, start); nl !== -1; nl = data.indexOf(NEWLINE, start)) {
      const lineOffset = carryOffset + start;
      const event = parseLine(data.subarray(start, nl));
      start = nl + 1;
      if (event === null) {
        firstDamaged ??= lineOffset;
        continue;
      }
      if (firstDamaged !== null) {
        throw new Error(
          `${file}: damaged line at byte ${firstDamaged} is followed by valid events; refusing to start`,
        );
      }
      events += 1;
      try {
        apply(event, events);
      } catch (err) {
        throw new Error(
          `${file}: event ${events} (byte ${lineOffset}) cannot be applied: ${(err as Error).message}`,
        );
      }
      validBytes = carryOffset + start;
    }
    // Copy: `chunk` is reused by the next read.
    carry = Buffer.from(data.subarray(start));
    carryOffset += start;
    if (carry.length > MAX_JOURNAL_LINE_BYTES) {
      throw new Error(`${file}: a line longer than ${MAX_JOURNAL_LINE_BYTES} bytes at byte ${carryOffset}`);
    }
  }
  return { events, validBytes };
}
