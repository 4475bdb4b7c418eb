/**
 * A payment end to end: POST /v1/payment_intents with confirm=true, automatic capture,
 * pm_card_visa and an Idempotency-Key, through the vault, the acquirer simulator (its own
 * process on this machine, over HTTP), the ledger and the outbox, against the bare-insert
 * route in the same run (see ../paired.ts).
 *
 *   npm run bench:payments             BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_CONNECTIONS=50
 */
import { runPairedBench } from '../paired.ts';

await runPairedBench({
  name: 'payments',
  moneta_endpoint: 'payment_intents',
  body: 'amount=2000&currency=usd&payment_method=pm_card_visa&confirm=true',
  content_type: 'application/x-www-form-urlencoded',
  title: 'moneta POST /v1/payment_intents (confirm, automatic capture, idempotent)',
  target_ratio: 0,
});
