import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import Stripe from 'stripe';
import { inject } from 'vitest';
import { type Config, loadConfig } from '../src/config/index.ts';
import { createPool } from '../src/db/pool.ts';
import { createMerchant } from '../src/merchants/index.ts';
import { createLogger } from '../src/ops/logger.ts';
import { type Database, type RunningMoneta, startMoneta } from '../src/service.ts';
import { EnvKeyProvider, type KeyProvider } from '../src/vault/index.ts';

/** A KEK and fingerprint key made for one test, held in memory only. */
export function testKeyProvider(): KeyProvider {
  const key = () => randomBytes(32).toString('base64');
  return new EnvKeyProvider(`1:${key()}`, key());
}

/** Where a test Moneta on database `db_url` keeps its keyring (outside the repository). */
export function testKeyringFile(db_url: string): string {
  return path.join(tmpdir(), 'moneta-test-keys', new URL(db_url).pathname.slice(1), 'keyring.json');
}

/** A fresh, empty database on the test PostgreSQL; dropped by the returned function. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const admin_url = inject('pg_admin_url');
  const name = `moneta_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: admin_url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(admin_url);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: admin_url });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Collects every log line a test's Moneta writes, so tests can search them. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    for (const line of chunk.toString('utf8').split('\n')) if (line) this.lines.push(line);
    done();
  }
  text(): string {
    return this.lines.join('\n');
  }
}

export interface TestMoneta {
  moneta: RunningMoneta;
  url: string;
  db_url: string;
  pool: pg.Pool;
  logs: LogCapture;
  merchant_id: string;
  secret_key: string;
  publishable_key: string;
  live_secret_key: string;
  restart(overrides?: Partial<Record<string, string>>): Promise<void>;
  close(): Promise<void>;
}

export function testConfig(db_url: string, overrides: Partial<Record<string, string>> = {}): Config {
  return loadConfig(
    {},
    {
      DATABASE_URL: db_url,
      PORT: '0',
      LOG_LEVEL: 'info',
      MONETA_DEMO_MERCHANT: 'false',
      MONETA_DB_POOL_MAX: '10',
      MONETA_WORKER_CONCURRENCY: '1',
      MONETA_KEK_FILE: testKeyringFile(db_url),
      // No acquirer simulators for tests that do not pay: nothing listens on port 9, so a
      // payment attempted anyway fails as "unreachable". Payment tests pass their own.
      MONETA_ACQUIRERS: 'acme=http://127.0.0.1:9',
      ...overrides,
    },
  );
}

/** Moneta on its own fresh database, listening on a free port, with one merchant. */
export async function startTestMoneta(overrides: Partial<Record<string, string>> = {}): Promise<TestMoneta> {
  const { url: db_url, drop } = await createTestDatabase();
  const logs = new LogCapture();
  const pool = createPool({
    connection_string: db_url,
    max_connections: 10,
    application_name: 'moneta-test',
  });
  const database: Database = { pool, url: db_url, embedded: null, close: async () => {} };
  let moneta = await startMoneta(testConfig(db_url, overrides), {
    log: createLogger('info', logs),
    database,
  });
  const merchant = await createMerchant(pool, { name: 'Test merchant', with_live_keys: true });
  const t: TestMoneta = {
    moneta,
    url: moneta.url,
    db_url,
    pool,
    logs,
    merchant_id: merchant.merchant.id,
    secret_key: merchant.test.secret_key,
    publishable_key: merchant.test.publishable_key,
    live_secret_key: merchant.live!.secret_key,
    async restart(next = overrides) {
      await moneta.stop();
      moneta = await startMoneta(testConfig(db_url, next), { log: createLogger('info', logs), database });
      t.moneta = moneta;
      t.url = moneta.url;
    },
    async close() {
      await moneta.stop();
      await pool.end();
      await drop();
    },
  };
  return t;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field in tests
  body: any;
}

/** A real HTTP request to the server under test. `form` sends x-www-form-urlencoded. */
export async function call(
  base: string,
  method: string,
  path: string,
  opts: { key?: string; form?: string; json?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  let body: string | undefined;
  if (opts.form !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = opts.form;
  } else if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

export async function countRows(pool: pg.Pool, table: string): Promise<number> {
  const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0].n;
}

const MONETA_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/moneta.js');

/** `moneta start --port 0` as its own process (for kill -9 tests), once its banner says it is ready. */
export async function startMonetaProcess(
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [MONETA_BIN, 'start', '--port', '0'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.resume();
  const url = await new Promise<string>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no banner:\n${text}`)), 60_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const m = /running at (http:\/\/\S+)/.exec(text);
      if (m && text.includes('Stop with Ctrl-C')) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`moneta exited with ${code}:\n${text}`)));
  });
  return { child, url };
}

/** The official `stripe` package pointed at a test Moneta. */
export function stripeClient(t: { url: string; secret_key: string }): Stripe {
  const url = new URL(t.url);
  return new Stripe(t.secret_key, {
    host: url.hostname,
    port: Number(url.port),
    protocol: 'http',
    maxNetworkRetries: 0,
  });
}
