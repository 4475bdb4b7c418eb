import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.ts';
import { luhnValid, redactCardNumbers } from './redact.ts';

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

  it('the logger masks card numbers and secrets in messages and fields', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _e, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('info', sink);
    log.info(
      { body: { note: '4000 0000 0000 0002', n: 5555555555554444 }, secret_key: 'sk_test_x' },
      'got 4242424242424242',
    );
    log.info({ err: new Error('card 378282246310005') }, 'failed');
    const text = lines.join('');
    expect(text).not.toContain('4242424242424242');
    expect(text).not.toContain('4000 0000 0000 0002');
    expect(text).not.toContain('sk_test_x');
    expect(text).not.toContain('5555555555554444');
    expect(text).not.toContain('378282246310005');
  });
});
