/**
 * Masks anything that looks like a card number: runs of 13–19 digits, optionally
 * separated by single spaces or dashes, that pass the Luhn check. Applied to every
 * log line (message and fields) so a PAN never reaches a log, whatever field it hides in.
 */
const CANDIDATE = /\d(?:[ -]?\d){12,18}/g;

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
