/**
 * Latency at a fixed request rate, measured open-loop (as wrk2 does): request i is due at
 * start + i / rate whatever happened to the requests before it, and its latency runs from
 * that due time to its response. A server that stalls therefore pays for every request that
 * waited behind the stall, instead of the load generator quietly sending less.
 *
 * autocannon's own rate limit is not this: each connection sends back to back until it has
 * used its share of the second, then pauses until the next second, so "250/s" is a burst at
 * full speed followed by silence, and its latencies are those of a saturated server.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import * as hdr from 'hdr-histogram-js';
import { Pool } from 'undici';

export interface OpenLoopOptions {
  /** Origin of the server, e.g. http://127.0.0.1:3000 */
  origin: string;
  path: string;
  headers: () => Record<string, string>;
  body: string;
  rate_per_s: number;
  seconds: number;
  /**
   * Sent at the rate before the measured `seconds` and not recorded: the server settles from
   * whatever ran before (a saturating round's backlog) and the connections open.
   */
  warmup_seconds: number;
  /** Connections the generator may open; a due request waits for a free one (and that wait counts). */
  max_connections: number;
}

export interface OpenLoopResult {
  target_rps: number;
  achieved_rps: number;
  /**
   * Requests that were due but never sent: more than MAX_OUTSTANDING were already waiting.
   * The percentiles below are of the requests sent, so once any are shed they flatter the
   * server, which could not keep up with the rate at all.
   */
  shed: number;
  errors: number;
  non2xx: number;
  /** Every answer, the warm-up's too: what the run's CPU time divides into. */
  answered_with_warmup: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
}

/** Requests sent but not answered; beyond it the server cannot keep up and due requests are shed. */
const MAX_OUTSTANDING = 2_000;
/** How long the run waits for the last answers once no more requests are due. */
const DRAIN_TIMEOUT_MS = 30_000;
/** The scheduler never sleeps less than this (Node's timers have millisecond resolution). */
const MIN_SLEEP_MS = 1;

export async function openLoop(opts: OpenLoopOptions): Promise<OpenLoopResult> {
  if (!(opts.rate_per_s > 0 && opts.seconds > 0 && opts.max_connections > 0)) {
    throw new Error('openLoop needs a positive rate, duration and connection count');
  }
  const pool = new Pool(opts.origin, { connections: opts.max_connections, pipelining: 1 });
  // Microseconds from 1 µs to 2 minutes, 3 significant digits.
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000 });
  const interval_ms = 1000 / opts.rate_per_s;
  const warmup = Math.floor(opts.rate_per_s * opts.warmup_seconds);
  const total = warmup + Math.floor(opts.rate_per_s * opts.seconds);
  /** Requests sent and not answered yet. */
  const inflight = new Set<Promise<void>>();
  /** Of those, the measured ones (warm-up requests are neither counted nor timed). */
  let recorded_outstanding = 0;
  let completed = 0;
  let shed = 0;
  let errors = 0;
  let non2xx = 0;
  let last_answer_ms = 0;
  let answered_with_warmup = 0;
  /** Set once the run gives up on what is still outstanding: those count as errors once, here. */
  let closing = false;

  const send = (due_ms: number, recorded: boolean) => {
    if (recorded) recorded_outstanding += 1;
    const p: Promise<void> = pool
      .request({ path: opts.path, method: 'POST', headers: opts.headers(), body: opts.body })
      .then(async (res) => {
        await res.body.dump();
        if (closing) return;
        answered_with_warmup += 1;
        if (!recorded) return;
        if (res.statusCode < 200 || res.statusCode > 299) non2xx += 1;
        last_answer_ms = performance.now();
        histogram.recordValue(Math.max(1, Math.round((last_answer_ms - due_ms) * 1000)));
        completed += 1;
      })
      .catch(() => {
        if (recorded && !closing) errors += 1;
      })
      .finally(() => {
        if (recorded) recorded_outstanding -= 1;
        inflight.delete(p);
      });
    inflight.add(p);
  };

  const start_ms = performance.now();
  let next = 0;
  // Bounded by `total`: every pass either sends or sheds the requests due so far.
  while (next < total) {
    const due_now = Math.min(total, Math.floor((performance.now() - start_ms) / interval_ms) + 1);
    for (; next < due_now; next += 1) {
      if (inflight.size >= MAX_OUTSTANDING) shed += next >= warmup ? 1 : 0;
      else send(start_ms + next * interval_ms, next >= warmup);
    }
    // Until the next request is due: a late timer delays it, and that delay counts in its latency.
    const next_due_ms = start_ms + next * interval_ms;
    await sleep(Math.max(MIN_SLEEP_MS, next_due_ms - performance.now()));
  }
  const drain = new AbortController();
  await Promise.race([
    Promise.allSettled([...inflight]),
    sleep(DRAIN_TIMEOUT_MS, undefined, { signal: drain.signal }).catch(() => undefined),
  ]);
  drain.abort(); // the timer must not hold the process for its full length
  closing = true;
  errors += recorded_outstanding; // never answered within the drain timeout
  await pool.destroy();
  const ms = (q: number) => histogram.getValueAtPercentile(q) / 1000;
  const result: OpenLoopResult = {
    target_rps: opts.rate_per_s,
    // Measured answers per second, from the first measured request's due time to the last
    // answer: a server that cannot keep up answers fewer than were due, and the drain of its
    // backlog counts in the time.
    achieved_rps:
      completed === 0 ? 0 : completed / ((last_answer_ms - (start_ms + warmup * interval_ms)) / 1000),
    shed,
    errors,
    non2xx,
    answered_with_warmup,
    p50_ms: ms(50),
    p90_ms: ms(90),
    p99_ms: ms(99),
    max_ms: histogram.maxValue / 1000,
  };
  histogram.destroy();
  return result;
}
