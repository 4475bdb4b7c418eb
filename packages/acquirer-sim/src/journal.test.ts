import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from './journal.ts';
import { tempDir } from './testing.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function openJournal(replayed: unknown[] = []) {
  const dir = await tempDir();
  dirs.push(dir);
  const file = path.join(dir, 'journal.jsonl');
  const { journal } = await Journal.open(
    file,
    (event) => replayed.push(event),
    () => undefined,
  );
  return { journal, file };
}

describe('journal', () => {
  it('groups the events of one turn into one fsync', async () => {
    const { journal, file } = await openJournal();
    const seqs = Array.from({ length: 1000 }, (_, i) => journal.append({ i }));
    expect(seqs[999]).toBe(1000);
    await Promise.all(seqs.map((s) => journal.durable(s)));
    expect(journal.syncs).toBe(1);
    // Events that arrive while an fsync runs share the next one.
    const waits: Promise<void>[] = [];
    for (let turn = 0; turn < 50; turn++) {
      waits.push(journal.durable(journal.append({ turn })));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(waits);
    expect(journal.syncs).toBeLessThanOrEqual(51);
    await journal.close();
    const lines = (await readFile(file, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(1050);
    expect(JSON.parse(lines[0] ?? '')).toEqual({ i: 0 });
  });

  it('replays events in order with 1-based sequence numbers', async () => {
    const { journal, file } = await openJournal();
    for (let i = 0; i < 5; i++) journal.append({ i });
    await journal.close();
    const seen: Array<[unknown, number]> = [];
    const { journal: again, replay } = await Journal.open(
      file,
      (e, seq) => seen.push([e, seq]),
      () => undefined,
    );
    expect(replay).toEqual({ events: 5, truncated_bytes: 0 });
    expect(seen.map(([, seq]) => seq)).toEqual([1, 2, 3, 4, 5]);
    // Already durable: resolves at once.
    await again.durable(5);
    expect(again.append({ i: 5 })).toBe(6);
    await again.close();
  });

  it('stops for good when a write fails: waiters rejected, owner told, no more appends', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const failures: Error[] = [];
    const { journal } = await Journal.open(
      path.join(dir, 'journal.jsonl'),
      () => undefined,
      (err) => failures.push(err),
    );
    // Pull the file out from under it, as a dying disk would.
    await (journal as unknown as { fh: { close(): Promise<void> } }).fh.close();
    const seq = journal.append({ lost: true });
    await expect(journal.durable(seq)).rejects.toThrow();
    expect(failures).toHaveLength(1);
    expect(journal.failed).toBe(failures[0]);
    expect(journal.accepting()).toBe(false);
    await expect(journal.barrier()).rejects.toThrow();
  });

  it('reports a barrier only once everything appended is on disk', async () => {
    const { journal } = await openJournal();
    let durable = false;
    journal.append({ a: 1 });
    const barrier = journal.barrier().then(() => {
      durable = true;
    });
    expect(durable).toBe(false);
    await barrier;
    expect(durable).toBe(true);
    await journal.close();
  });
});
