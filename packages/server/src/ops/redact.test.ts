import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.ts';
import { luhnValid, redactCardNumbers, redactDeep } from './redact.ts';

describe('card number redaction', () => {
  it('masks Luhn-valid 13–19 digit runs, plain, spaced and dashed', () => {
    for (const pan of ['4242424242424242', '4242 4242 4242 4242', '4242-4242-4242-4242', '378282246310005']) {
      const out = redactCardNumbers(`card ${pan} here`);
      expect(out).not.toContain(pan);
      expect(out).toContain('****');
    }
  });

  it('leaves other numbers alone', () => {
    expect(luhnValid('4242424242424241')).toBe(false);
    expect(redactCardNumbers('order 4242424242424241 and 1795262468')).toBe(
      'order 4242424242424241 and 1795262468',
    );
  });

  it('masks card numbers in nested fields, numbers and arrays', () => {
    const out = JSON.stringify(redactDeep({ a: { b: ['x 5555555555554444'] }, n: 4242424242424242 }));
    expect(out).not.toContain('5555555555554444');
    expect(out).not.toContain('4242424242424242');
  });

  it('the logger masks card numbers and secrets in messages and fields', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _e, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('info', sink);
    log.info({ body: { note: '4000 0000 0000 0002' }, secret_key: 'sk_test_x' }, 'got 4242424242424242');
    const text = lines.join('');
    expect(text).not.toContain('4242424242424242');
    expect(text).not.toContain('4000 0000 0000 0002');
    expect(text).not.toContain('sk_test_x');
  });
});
