/**
 * Card tokenization as a browser does it: POST /v1/payment_methods with a publishable key,
 * a form body and an Idempotency-Key (validation, a fresh data key, two AES-256-GCM seals,
 * a keyed fingerprint, and the card, its CVC, the payment method and the key row in one
 * statement), against a bare fastify route that inserts one row (see ../paired.ts).
 *
 *   npm run bench:vault                BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_CONNECTIONS=50
 */
import { runPairedBench } from '../paired.ts';

await runPairedBench({
  name: 'vault',
  moneta_endpoint: 'payment_methods',
  body: 'type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2034&card[cvc]=123',
  content_type: 'application/x-www-form-urlencoded',
  title: 'moneta POST /v1/payment_methods (publishable key, idempotent)',
  target_ratio: 0.5,
});
