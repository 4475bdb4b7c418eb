/**
 * A process that writes to the ledger as fast as it can, for the crash test: it prints
 * `OK <transfer id>` for every transfer only after createTransfers returned `ok` (that is,
 * after the commit), and is meant to be killed with SIGKILL in the middle.
 *
 *   node bin/run-ts.js test/ledger-writer.ts DATABASE_URL ACCOUNT_ID,ACCOUNT_ID,…
 */
import { createPool } from '../src/db/pool.ts';
import { Ledger, TransferFlags, type TransferInput, ZERO_ID } from '../src/ledger/index.ts';
import { transferInput } from './ledger-fixtures.ts';

const [db_url, list] = process.argv.slice(2);
if (!db_url || !list) throw new Error('usage: ledger-writer.ts DATABASE_URL ACCOUNT_IDS');
const accounts = list.split(',');
const pool = createPool({ connection_string: db_url, max_connections: 8, application_name: 'ledger-writer' });
const ledger = new Ledger(pool);
const CALLERS = 8;
const pick = () => accounts[Math.floor(Math.random() * accounts.length)]!;

function transfer(over: Partial<TransferInput> = {}): TransferInput {
  const debit = pick();
  let credit = pick();
  while (credit === debit) credit = pick();
  return transferInput(debit, credit, BigInt(1 + Math.floor(Math.random() * 1000)), over);
}

let out = '';
const flush = () => {
  if (out) process.stdout.write(out);
  out = '';
};
setInterval(flush, 5).unref();

async function caller(): Promise<never> {
  for (;;) {
    // A pending transfer, a plain one in a linked chain with a second, and a post of the pending.
    const pending = transfer({ flags: TransferFlags.pending, timeout_s: 3600 });
    const chain = [transfer({ flags: TransferFlags.linked }), transfer()];
    const batch = [pending, ...chain];
    const results = await ledger.createTransfers(batch);
    results.forEach((r, i) => {
      if (r === 'ok') out += `OK ${batch[i]!.id}\n`;
    });
    if (results[0] === 'ok') {
      const post = transfer({
        debit_account_id: ZERO_ID,
        credit_account_id: ZERO_ID,
        amount: null,
        pending_id: pending.id,
        flags: TransferFlags.post_pending_transfer,
        ledger: 0,
        code: 0,
      });
      const [r] = await ledger.createTransfers([post]);
      if (r === 'ok') out += `OK ${post.id}\n`;
    }
  }
}

process.stdout.write('READY\n');
await Promise.all(Array.from({ length: CALLERS }, caller));
