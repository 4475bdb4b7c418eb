import { describe, expect, it } from 'vitest';
import { BatchOutcomeUnknown, GroupCommit, JobsFailed } from './group-commit.ts';

/** The batcher's queue on its own: which jobs go together (no database: the commit is a stand-in). */
function recorder(opts: {
  max_batch: number;
  fail_with?: string;
  failure?: 'generic' | 'phases' | 'unknown';
}) {
  const batches: string[][] = [];
  const alone: string[] = [];
  const batcher = new GroupCommit<{ id: string; object: string }, string>(
    { max_batch: opts.max_batch, max_in_flight: 1, max_queued: 100 },
    async (jobs) => {
      batches.push(jobs.map((j) => j.id));
      const failing = jobs.findIndex((j) => j.id === opts.fail_with);
      if (failing >= 0) {
        if (opts.failure === 'phases') throw new JobsFailed([failing]);
        if (opts.failure === 'unknown') throw new BatchOutcomeUnknown(new Error('connection lost'));
        throw new Error('batch failed');
      }
      return jobs.map((j) => `together:${j.id}`);
    },
    async (job) => {
      alone.push(job.id);
      if (job.id === opts.fail_with) throw new Error(`${job.id} failed`);
      return `alone:${job.id}`;
    },
    (job) => job.object,
  );
  return { batcher, batches, alone };
}

describe('phase batcher', () => {
  it('jobs submitted together go in one batch, at most max_batch and one per object', async () => {
    const { batcher, batches } = recorder({ max_batch: 3 });
    const jobs = [
      { id: 'j1', object: 'pi_a' },
      { id: 'j2', object: 'pi_b' },
      { id: 'j3', object: 'pi_a' },
      { id: 'j4', object: 'pi_c' },
      { id: 'j5', object: 'pi_d' },
    ];
    const results = await Promise.all(jobs.map((j) => batcher.submit(j)));
    // j3 changes what j1 does: it waits for the next batch, which j5 (over the limit) joins.
    expect(batches).toEqual([
      ['j1', 'j2', 'j4'],
      ['j3', 'j5'],
    ]);
    expect(results).toEqual(['together:j1', 'together:j2', 'together:j3', 'together:j4', 'together:j5']);
  });

  it('a phase that failed by itself runs alone; the others go together again', async () => {
    const { batcher, batches, alone } = recorder({ max_batch: 10, fail_with: 'j2', failure: 'phases' });
    const results = await Promise.allSettled(
      ['j1', 'j2', 'j3'].map((id) => batcher.submit({ id, object: id })),
    );
    expect(batches).toEqual([
      ['j1', 'j2', 'j3'],
      ['j1', 'j3'],
    ]);
    expect(alone).toEqual(['j2']);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      'together:j1',
      'j2 failed',
      'together:j3',
    ]);
  });

  it('a batch whose commit may have happened is never run again: every job gets the error', async () => {
    const { batcher, batches, alone } = recorder({ max_batch: 10, fail_with: 'j1', failure: 'unknown' });
    const results = await Promise.allSettled(['j1', 'j2'].map((id) => batcher.submit({ id, object: id })));
    expect(batches).toHaveLength(1);
    expect(alone).toEqual([]);
    expect(results.map((r) => r.status === 'rejected' && (r.reason as Error).message)).toEqual([
      'connection lost',
      'connection lost',
    ]);
  });

  it('a failed batch runs each job alone, and only the failing one gets an error', async () => {
    const { batcher, alone } = recorder({ max_batch: 10, fail_with: 'j2' });
    const results = await Promise.allSettled(
      ['j1', 'j2', 'j3'].map((id) => batcher.submit({ id, object: id })),
    );
    expect(alone).toEqual(['j1', 'j2', 'j3']);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      'alone:j1',
      'j2 failed',
      'alone:j3',
    ]);
  });

  it('a batch that answers the wrong number of jobs fails them all instead of leaving them waiting', async () => {
    const batcher = new GroupCommit<{ id: string; object: string }, string>(
      { max_batch: 10, max_in_flight: 1, max_queued: 100 },
      async () => ['only one answer'],
      async (job) => `alone:${job.id}`,
      (job) => job.object,
    );
    const results = await Promise.allSettled(['j1', 'j2'].map((id) => batcher.submit({ id, object: id })));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(batcher.queued).toBe(0);
  });

  it('with `refuse`, a job beyond the queue bound is refused instead of committed alone', async () => {
    const alone: string[] = [];
    const batcher = new GroupCommit<{ id: string; object: string }, string>(
      { max_batch: 10, max_in_flight: 1, max_queued: 2, refuse: () => new Error('behind; retry') },
      async (jobs) => jobs.map((j) => `together:${j.id}`),
      async (job) => {
        alone.push(job.id);
        return `alone:${job.id}`;
      },
      (job) => job.object,
    );
    const results = await Promise.allSettled(
      ['j1', 'j2', 'j3'].map((id) => batcher.submit({ id, object: id })),
    );
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      'together:j1',
      'together:j2',
      'behind; retry',
    ]);
    expect(alone).toEqual([]);
  });
});
