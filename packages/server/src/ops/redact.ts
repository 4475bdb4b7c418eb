/**
 * Masks anything that looks like a card number: runs of 13–19 digits, optionally
 * separated by single spaces or dashes, that pass the Luhn check. Applied to every
 * log line (message and fields) so a PAN never reaches a log, whatever field it hides in.
 */
const CANDIDATE = /\d(?:[ -]?\d){12,18}/g;
const MAX_DEPTH = 8;
const MAX_KEYS = 200;

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i -= 1) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

export function redactCardNumbers(text: string): string {
  if (text.length < 13) return text;
  return text.replace(CANDIDATE, (match) => {
    const digits = match.replace(/[ -]/g, '');
    if (digits.length < 13 || digits.length > 19 || !luhnValid(digits)) return match;
    return `[REDACTED PAN ****${digits.slice(-4)}]`;
  });
}

/** Deep copy with card numbers masked; bounded in depth and width so a hostile object cannot stall logging. */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactCardNumbers(value);
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1e12) {
    return redactCardNumbers(String(value)) === String(value) ? value : '[REDACTED PAN]';
  }
  if (typeof value === 'bigint') return redactDeep(value.toString(), depth);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[depth limit]';
  if (value instanceof Error) {
    return {
      type: value.name,
      message: redactCardNumbers(value.message),
      stack: redactCardNumbers(value.stack ?? ''),
    };
  }
  if (Array.isArray(value)) return value.slice(0, MAX_KEYS).map((v) => redactDeep(v, depth + 1));
  const out: Record<string, unknown> = {};
  let count = 0;
  for (const [k, v] of Object.entries(value)) {
    if (count >= MAX_KEYS) break;
    out[k] = redactDeep(v, depth + 1);
    count += 1;
  }
  return out;
}
