import { createHmac } from 'node:crypto';
import { randomBase62 } from '../lib/random.ts';

/**
 * Stripe's webhook signature, so `stripe.webhooks.constructEvent` verifies our deliveries:
 * `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, one `v1`
 * per secret in force (two while a rolled secret overlaps with the new one). The key is the
 * secret string itself, `whsec_` prefix included, as Stripe's libraries use it.
 */
export function signatureHeader(payload: string, secrets: readonly string[], timestamp_s: number): string {
  const signed = `${timestamp_s}.${payload}`;
  const v1 = secrets.map((secret) => `v1=${createHmac('sha256', secret).update(signed).digest('hex')}`);
  return [`t=${timestamp_s}`, ...v1].join(',');
}

const SECRET_CHARS = 32; // base62: about 190 bits

export function newWebhookSecret(): string {
  return `whsec_${randomBase62(SECRET_CHARS)}`;
}
