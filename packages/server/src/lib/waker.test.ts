import { describe, expect, it } from 'vitest';
import { Waker } from './waker.ts';

describe('Waker', () => {
  it('a nudge cuts a sleep short, and one that came while awake is not lost', async () => {
    const waker = new Waker();
    const order: string[] = [];
    // Asleep for an hour: only the nudge can end it.
    const sleeping = waker.sleep(3_600_000).then(() => order.push('woke'));
    waker.nudge();
    await sleeping;
    // Nudged while awake: the next sleep returns at once, once.
    waker.nudge();
    await waker.sleep(3_600_000);
    order.push('returned at once');
    let slept = false;
    const third = waker.sleep(1).then(() => {
      slept = true;
    });
    expect(slept).toBe(false); // the earlier nudge was used up
    await third;
    expect(order).toEqual(['woke', 'returned at once']);
  });
});
