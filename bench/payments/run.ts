/**
 * A payment end to end: POST /v1/payment_intents with confirm=true, automatic capture,
 * pm_card_visa and an Idempotency-Key, through the vault, the acquirer simulator (its own
 * process on this machine, over HTTP), the ledger and the outbox, against the bare-insert
 * route in the same run (see ../paired.ts).
 *
 * Then Moneta alone at fixed rates (100, 250, 500 and 1,000 payments/s, open loop: see
 * ../open-loop.ts), for the latency there.
 *
 *   npm run bench:payments             BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_CONNECTIONS=50
 *                                      BENCH_LATENCY_RATES=100,250,500,1000
 */
import { runPairedBench } from '../paired.ts';

await runPairedBench({
  name: 'payments',
  moneta_endpoint: 'payment_intents',
  body: 'amount=2000&currency=usd&payment_method=pm_card_visa&confirm=true',
  content_type: 'application/x-www-form-urlencoded',
  title: 'moneta POST /v1/payment_intents (confirm, automatic capture, idempotent)',
  target_ratio: 0,
  // The latency target is p99 ≤ 50 ms at 1,000 payments/s; lower rates show the curve.
  latency_rates: [100, 250, 500, 1000],
});
