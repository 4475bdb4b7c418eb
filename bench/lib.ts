/** What every benchmark here needs: a scratch database and medians. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { EmbeddedPostgres } from '../packages/server/src/db/embedded.ts';
import { createLogger } from '../packages/server/src/ops/logger.ts';

const RESULTS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');

/**
 * Writes a run's summary to `bench/results/<name>-latest.json`, which the docs quote, headed
 * by when, on what machine and against which database it ran.
 */
export function writeResults(name: string, database: string, summary: object): Promise<void> {
  const results = { date: new Date().toISOString(), machine: machine(), database, ...summary };
  return writeFile(path.join(RESULTS_DIR, `${name}-latest.json`), `${JSON.stringify(results, null, 2)}\n`);
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export interface BenchDatabase {
  url: string;
  /** `embedded PostgreSQL 15` or `DATABASE_URL`, for the results file. */
  kind: string;
  close(): Promise<void>;
}

/**
 * A fresh database for one benchmark run: on the server in DATABASE_URL when set, otherwise
 * on an embedded PostgreSQL in a temporary directory. `close` drops it and stops the server.
 */
export async function benchDatabase(prefix: string): Promise<BenchDatabase> {
  let embedded: EmbeddedPostgres | null = null;
  let tmp: string | null = null;
  let admin_url = process.env.DATABASE_URL;
  if (!admin_url) {
    tmp = await mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
    embedded = new EmbeddedPostgres(tmp, createLogger('warn'));
    admin_url = await embedded.start();
  }
  const name = `${prefix.replaceAll('-', '_')}_${Date.now()}`;
  const admin = new pg.Client({ connectionString: admin_url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(admin_url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    kind: embedded ? 'embedded PostgreSQL 15' : 'DATABASE_URL',
    async close() {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
      await embedded?.stop();
      if (tmp) await rm(tmp, { recursive: true, force: true });
    },
  };
}

function machine(): string {
  return `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? ''}`;
}
