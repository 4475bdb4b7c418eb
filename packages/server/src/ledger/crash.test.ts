import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers.ts';
import { accountInput } from '../../test/ledger-fixtures.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { Ledger, ledgerId } from './index.ts';
import { verifyLedger } from './verify.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RUN_TS = path.resolve(HERE, '../../bin/run-ts.js');
const WRITER = path.resolve(HERE, '../../test/ledger-writer.ts');

let pool: Pool;
let db_url: string;
let drop: () => Promise<void>;

beforeAll(async () => {
  const db = await createTestDatabase();
  drop = db.drop;
  db_url = db.url;
  pool = createPool({ connection_string: db.url, max_connections: 4, application_name: 'crash-test' });
  await migrate(pool);
});
afterAll(async () => {
  await pool?.end();
  await drop?.();
});

describe('ledger under kill -9', () => {
  it('a writer killed mid-batch loses nothing it acknowledged, and every invariant holds', async () => {
    const accounts = Array.from({ length: 20 }, () => ledgerId());
    const results = await new Ledger(pool).createAccounts(accounts.map((id) => accountInput(0, { id })));
    expect(results.every((r) => r === 'ok')).toBe(true);

    const child = spawn(process.execPath, [RUN_TS, WRITER, db_url, accounts.join(',')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acknowledged = new Set<string>();
    let stderr = '';
    let buffer = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, signal) => resolve(signal)),
    );
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`writer made too little progress:\n${stderr}`)),
        60_000,
      );
      child.stdout.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) if (line.startsWith('OK ')) acknowledged.add(line.slice(3));
        // Kill it while it is busy: well after start-up, in the middle of its stream of batches.
        if (acknowledged.size >= 2_000 && child.exitCode === null && !child.killed) {
          clearTimeout(timer);
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    expect(await exited).toBe('SIGKILL');

    const { rows } = await pool.query('SELECT id FROM ledger_transfers WHERE id = ANY($1::uuid[])', [
      [...acknowledged],
    ]);
    expect(rows.length).toBe(acknowledged.size);
    expect(JSON.stringify(await verifyLedger(pool))).toBe('[]');
    // Work that was in flight was rolled back whole: more stored than acknowledged is fine
    // (committed, answer lost with the process), less never.
    const stored = await pool.query('SELECT count(*)::int AS n FROM ledger_transfers');
    expect(stored.rows[0].n).toBeGreaterThanOrEqual(acknowledged.size);
  }, 120_000);
});
