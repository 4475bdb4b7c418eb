/**
 * The daily settlement report: one CSV row per capture and per refund whose time falls on the
 * UTC day asked for, in time order. Captures pay the simulated fee (2.9 % + 30 minor units,
 * rounded down); refunds are negative and carry no fee.
 */

export interface SettlementItem {
  type: 'capture' | 'refund';
  authorization_id: string;
  reference: string;
  currency: string;
  /** Positive, as captured or refunded. */
  amount: number;
  /** Unix seconds. */
  created: number;
}

export const SETTLEMENT_HEADER = 'type,authorization_id,reference,currency,amount,fee,net,created_at';

export function captureFee(amount: number): number {
  return Number((BigInt(amount) * 29n) / 1000n) + 30; // integer division, no floating point
}

/** RFC 4180 quoting; references are our own, so their text is kept as it was given. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

function isoSeconds(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace('.000Z', 'Z');
}

function row(item: SettlementItem): string {
  const amount = item.type === 'capture' ? item.amount : -item.amount;
  const fee = item.type === 'capture' ? captureFee(item.amount) : 0;
  return [
    item.type,
    item.authorization_id,
    csvField(item.reference),
    item.currency,
    String(amount),
    String(fee),
    String(amount - fee),
    isoSeconds(item.created),
  ].join(',');
}

/** Items arrive in journal order; the stable sort only matters if the clock stepped back. */
export function settlementCsv(items: readonly SettlementItem[]): string {
  const sorted = [...items].sort((a, b) => a.created - b.created);
  return [SETTLEMENT_HEADER, ...sorted.map(row)].map((line) => `${line}\n`).join('');
}
