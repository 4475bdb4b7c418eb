import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, createTestDatabase } from '../../test/helpers.ts';
import { isAlive } from '../db/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, withTransaction } from '../db/pool.ts';
import { createMerchant } from '../merchants/index.ts';
import { createLogger } from '../ops/logger.ts';
import { FileKeyProvider, Vault } from '../vault/index.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/moneta.js');
const run = promisify(execFile);

/** Runs `moneta ARGS` to completion. */
async function moneta(args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      // DATABASE_URL is cleared unless a test passes one: these tests use the embedded server.
      env: { ...process.env, DATABASE_URL: '', ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

interface Started {
  child: ChildProcess;
  url: string;
  banner: string;
  secret_key: string | null;
  exited: Promise<number | null>;
}

/** Starts `moneta start` and waits for its banner (printed once /readyz would be green). */
async function start(env: Record<string, string>): Promise<Started> {
  const child = spawn(process.execPath, [BIN, 'start', '--port', '0'], {
    env: { ...process.env, DATABASE_URL: '', LOG_LEVEL: 'warn', MONETA_AUTH_CACHE_TTL_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let banner = '';
  child.stdout!.resume();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner within 60 s:\n${banner}`)), 60_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      banner += chunk.toString();
      if (banner.includes('Stop with Ctrl-C')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => reject(new Error(`moneta exited with ${code}:\n${banner}`)));
  });
  const url = /running at (http:\/\/[^\s]+)/.exec(banner)![1]!;
  const secret_key = /secret key:\s+(sk_test_\w+)/.exec(banner)?.[1] ?? null;
  return { child, url, banner, secret_key, exited };
}

async function stop(s: Started, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  s.child.kill(signal);
  return s.exited;
}

function postmasterPid(dataDir: string): number | null {
  const file = path.join(dataDir, 'pg', 'postmaster.pid');
  return existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : null;
}

const alive = isAlive;

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'moneta-cli-'));
});
afterAll(async () => {
  const pid = postmasterPid(dataDir);
  if (pid && alive(pid)) process.kill(pid, 'SIGQUIT');
  await rm(dataDir, { recursive: true, force: true });
});

describe('moneta start with embedded PostgreSQL', () => {
  let customerId = '';
  let demoKey = '';

  it('first start prints demo keys and a curl example that works', async () => {
    const s = await start({ MONETA_DATA_DIR: dataDir });
    expect(s.banner).toMatch(/Demo merchant acct_\w+ created/);
    expect(s.banner).toContain(`curl ${s.url}/v1/customers -u ${s.secret_key}:`);
    demoKey = s.secret_key!;
    const res = await fetch(`${s.url}/v1/customers`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${demoKey}:`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'email=jenny%40example.com&metadata[order]=42',
    });
    expect(res.status).toBe(200);
    customerId = ((await res.json()) as { id: string }).id;
    // The banner's payment example goes through the simulators `moneta start` runs beside itself.
    expect(s.banner).toMatch(/Acquirers: acme http:\/\/127\.0\.0\.1:\d+, globex http/);
    expect(s.banner).toContain(`curl ${s.url}/v1/payment_intents -u ${s.secret_key}:`);
    const paid = await call(s.url, 'POST', '/v1/payment_intents', {
      key: demoKey,
      form: 'amount=2000&currency=usd&payment_method=pm_card_visa&confirm=true',
    });
    expect([paid.status, paid.body.status]).toEqual([200, 'succeeded']);
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    const pgPid = postmasterPid(dataDir)!;
    expect(alive(pgPid)).toBe(true);
    expect(await stop(s)).toBe(0);
    expect(alive(pgPid)).toBe(false); // the embedded server stops with Moneta
  });

  it('a CLI command attaches to the running server; merchants create --json and keys roll work', async () => {
    const s = await start({ MONETA_DATA_DIR: dataDir });
    expect(s.banner).not.toContain('Demo merchant'); // only on the first start
    const created = await moneta(['merchants', 'create', '--name', 'Acme Ltd', '--json'], {
      MONETA_DATA_DIR: dataDir,
    });
    expect(created.code).toBe(0);
    const m = JSON.parse(created.stdout);
    expect(Object.keys(m)).toEqual(['id', 'secret_key', 'publishable_key']);
    expect(m.secret_key).toMatch(/^sk_test_/);
    expect(m.publishable_key).toMatch(/^pk_test_/);
    expect((await call(s.url, 'GET', '/v1/customers', { key: m.secret_key })).status).toBe(200);
    expect((await call(s.url, 'GET', '/v1/customers', { key: m.publishable_key })).status).toBe(403);

    // Rolling with a grace period keeps both keys working; rolling with 0 ends the old one now.
    const graced = await moneta(['keys', 'roll', '--merchant', m.id, '--expire-in-hours', '1', '--json'], {
      MONETA_DATA_DIR: dataDir,
    });
    expect(graced.code).toBe(0);
    const k1 = JSON.parse(graced.stdout).key as string;
    expect((await call(s.url, 'GET', '/v1/customers', { key: m.secret_key })).status).toBe(200);
    expect((await call(s.url, 'GET', '/v1/customers', { key: k1 })).status).toBe(200);
    const now = await moneta(['keys', 'roll', '--merchant', m.id, '--expire-in-hours', '0', '--json'], {
      MONETA_DATA_DIR: dataDir,
    });
    const k2 = JSON.parse(now.stdout).key as string;
    expect((await call(s.url, 'GET', '/v1/customers', { key: m.secret_key })).status).toBe(401);
    expect((await call(s.url, 'GET', '/v1/customers', { key: k1 })).status).toBe(401);
    expect((await call(s.url, 'GET', '/v1/customers', { key: k2 })).status).toBe(200);
    expect(await stop(s)).toBe(0);
  });

  it('recovers after kill -9: the orphaned database is stopped and the next start works, data intact', async () => {
    const s = await start({ MONETA_DATA_DIR: dataDir });
    const orphan = postmasterPid(dataDir)!;
    s.child.kill('SIGKILL');
    await s.exited;
    expect(alive(orphan)).toBe(true); // left behind, as after a real crash
    const again = await start({ MONETA_DATA_DIR: dataDir });
    expect(alive(orphan)).toBe(false);
    const c = await call(again.url, 'GET', `/v1/customers/${customerId}`, { key: demoKey });
    expect(c.status).toBe(200);
    expect(c.body.metadata).toEqual({ order: '42' });
    expect(await stop(again)).toBe(0);
  });

  it('a stale postmaster.pid left by a crash does not stop the next start', async () => {
    const pidFile = path.join(dataDir, 'pg', 'postmaster.pid');
    expect(existsSync(pidFile)).toBe(false);
    writeFileSync(pidFile, `${2 ** 22 - 3}\n${dataDir}/pg\n1700000000\n5999\n\n127.0.0.1\n0 0\nready   \n`);
    writeFileSync(path.join(dataDir, 'embedded-postgres.owner'), String(2 ** 22 - 5));
    const s = await start({ MONETA_DATA_DIR: dataDir });
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    expect(await stop(s)).toBe(0);
  });

  it('finishes an in-flight request during a graceful shutdown, then refuses new ones', async () => {
    const s = await start({ MONETA_DATA_DIR: dataDir });
    const u = new URL(s.url);
    const body = 'name=Slow+upload&description=xxxxxxxx';
    const inFlight = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: u.hostname,
          port: u.port,
          path: '/v1/customers',
          method: 'POST',
          headers: {
            authorization: `Bearer ${demoKey}`,
            'content-type': 'application/x-www-form-urlencoded',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode!, text }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 10)); // the request is now in flight
      setTimeout(() => {
        s.child.kill('SIGTERM');
        setTimeout(() => req.end(body.slice(10)), 300);
      }, 200);
    });
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).name).toBe('Slow upload');
    expect(await s.exited).toBe(0);
  });
});

describe('moneta commands', () => {
  it('a wrong configuration value stops the start, naming the variable', async () => {
    const res = await moneta(['start'], { PORT: 'eighty', MONETA_DATA_DIR: dataDir });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('PORT="eighty" is not valid');
    expect(res.stderr).toContain('an integer from 0 to 65535');
  });

  it('bad arguments get a clear error and exit 2', async () => {
    const roll = await moneta(['keys', 'roll', '--merchant', 'nope'], { MONETA_DATA_DIR: dataDir });
    expect(roll.code).toBe(2);
    expect(roll.stderr).toContain('--merchant must be a merchant id');
    const hours = await moneta(['keys', 'roll', '--merchant', 'acct_x', '--expire-in-hours', '-1'], {
      MONETA_DATA_DIR: dataDir,
    });
    expect(hours.code).toBe(2);
    const noName = await moneta(['merchants', 'create'], { MONETA_DATA_DIR: dataDir });
    expect(noName.code).toBe(2);
    expect(noName.stderr).toContain('--name');
  });

  it('two `moneta migrate` at once on an empty database both succeed and apply each migration once', async () => {
    const db = await createTestDatabase();
    try {
      const [a, b] = await Promise.all([
        moneta(['migrate'], { DATABASE_URL: db.url }),
        moneta(['migrate'], { DATABASE_URL: db.url }),
      ]);
      expect(a.code, a.stderr).toBe(0);
      expect(b.code, b.stderr).toBe(0);
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      const { rows } = await client.query(
        'SELECT version, count(*)::int AS n FROM moneta_migrations GROUP BY version',
      );
      await client.end();
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.n === 1)).toBe(true);
    } finally {
      await db.drop();
    }
  });

  it('`moneta audit verify` exits 0 on a sound log and 1 naming the edited row; CLI changes are audited', async () => {
    const db = await createTestDatabase();
    const env = { DATABASE_URL: db.url };
    const client = new pg.Client({ connectionString: db.url });
    try {
      const created = await moneta(['merchants', 'create', '--name', 'Audited', '--json'], env);
      expect(created.code, created.stderr).toBe(0);
      const m = JSON.parse(created.stdout);
      const rolled = await moneta(['keys', 'roll', '--merchant', m.id, '--json'], env);
      expect(rolled.code, rolled.stderr).toBe(0);
      const ok = await moneta(['audit', 'verify', '--json'], env);
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toEqual({ ok: true, findings: [] });
      await client.connect();
      const { rows } = await client.query(
        'SELECT seq::int, actor, origin, action, outcome, merchant_id, object_type FROM audit_log ORDER BY seq',
      );
      const common = { actor: 'cli', origin: 'cli', outcome: 'success', merchant_id: m.id };
      expect(rows).toEqual([
        { seq: 1, action: 'merchant.create', object_type: 'merchant', ...common },
        { seq: 2, action: 'api_key.roll', object_type: 'api_key', ...common },
      ]);
      // Hide who rolled the key, as an owner of the table could.
      await client.query('ALTER TABLE audit_log DISABLE TRIGGER USER');
      await client.query(`UPDATE audit_log SET actor = 'system' WHERE seq = 2`);
      await client.query('ALTER TABLE audit_log ENABLE TRIGGER USER');
      const broken = await moneta(['audit', 'verify'], env);
      expect(broken.code).toBe(1);
      expect(broken.stdout).toContain('audit row 2: hash does not match its content (edited?)');
      expect(broken.stdout).not.toContain('audit row 1');
    } finally {
      await client.end();
      await db.drop();
    }
  });

  it('`moneta keys rotate-kek` re-wraps every data key with progress, retires the old version, and says what to do with MONETA_KEK', async () => {
    const db = await createTestDatabase();
    const other = await createTestDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'moneta-kek-'));
    const pool = createPool({ connection_string: db.url, max_connections: 2, application_name: 'cli-test' });
    try {
      await migrate(pool);
      const kek_file = path.join(dir, 'keyring.json');
      const keys = (await FileKeyProvider.open(kek_file)).provider;
      const vault = new Vault(pool, keys, { cvc_ttl_s: 60, log: createLogger('silent') });
      await vault.checkKeyring();
      const merchant = await createMerchant(pool, { name: 'Rotating' });
      const scope = { merchant_id: merchant.merchant.id, livemode: false };
      for (const number of ['4242424242424242', '5555555555554444', '378282246310005']) {
        const sealed = await vault.sealCard(scope, { number, cvc: '123' });
        await withTransaction(pool, (tx) => tx.commit(sealed.writes));
      }
      const env = { DATABASE_URL: db.url, MONETA_KEK_FILE: kek_file, MONETA_KEK_REFRESH_MS: '100' };
      const first = await moneta(['keys', 'rotate-kek', '--batch-size', '2'], env);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stderr).toContain('rewrap: 100% (2/2)');
      expect(first.stdout).toContain(
        'Rotated to KEK version 2: 2 data key(s) re-wrapped; retired version(s) 1.',
      );
      const second = await moneta(['keys', 'rotate-kek', '--json'], env);
      expect(JSON.parse(second.stdout)).toMatchObject({
        version: 3,
        added: true,
        retired: [2],
        rewrapped: 2,
      });
      const { rows } = await pool.query('SELECT DISTINCT kek_version FROM vault_data_keys');
      expect(rows).toEqual([{ kek_version: 3 }]);
      expect(JSON.parse(readFileSync(kek_file, 'utf8')).keys).toHaveProperty('3');
      expect(Object.keys(JSON.parse(readFileSync(kek_file, 'utf8')).keys)).toEqual(['3']);
      // Keys from the environment cannot be added to by Moneta: the message says what to do.
      const key = () => randomBytes(32).toString('base64');
      const env_keys = { MONETA_KEK: `1:${key()}`, MONETA_FINGERPRINT_KEY: key() };
      const fixed = await moneta(['keys', 'rotate-kek'], { ...env_keys, DATABASE_URL: other.url });
      expect(fixed.code).toBe(1);
      expect(fixed.stderr).toContain(
        'Add version 2 (2:<32 random bytes, base64>) to MONETA_KEK on every Moneta process',
      );
      // And a keyring that does not hold the versions the database uses is refused by name.
      const stranger = await moneta(['keys', 'rotate-kek'], { ...env_keys, DATABASE_URL: db.url });
      expect(stranger.code).toBe(1);
      expect(stranger.stderr).toContain(
        'card data is wrapped under KEK version 3, which MONETA_KEK does not hold',
      );
    } finally {
      await pool.end();
      await db.drop();
      await other.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('`moneta ledger verify` exits 0 on a sound ledger and 1, naming the check, on a broken one', async () => {
    const db = await createTestDatabase();
    try {
      const ok = await moneta(['ledger', 'verify', '--json'], { DATABASE_URL: db.url });
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toEqual({ ok: true, violations: [] });
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      // An account whose balance no transfer explains.
      await client.query(
        `INSERT INTO ledger_accounts (id, livemode, ledger, code, flags, debits_posted, timestamp)
         VALUES ('0190a000-0000-7000-8000-000000000001', false, 840, 1, 0, 5, 1)`,
      );
      await client.end();
      const broken = await moneta(['ledger', 'verify'], { DATABASE_URL: db.url });
      expect(broken.code).toBe(1);
      expect(broken.stdout).toContain('account_balances_match_transfers');
      expect(broken.stdout).toContain('ledger_debits_equal_credits');
      expect(broken.stderr).toContain('account_balances_match_transfers');
    } finally {
      await db.drop();
    }
  });
});
