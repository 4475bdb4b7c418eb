import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import type { Pool } from './pool.ts';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
/** Any fixed number works; it only has to be the same in every Moneta process. */
const MIGRATION_LOCK_KEY = 7_242_011_001;
const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;

interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export function listMigrations(): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((f) => FILE_NAME.test(f))
    .sort()
    .map((file) => {
      const m = FILE_NAME.exec(file)!;
      const sql = readFileSync(path.join(MIGRATIONS_DIR, file), 'utf8');
      return {
        version: Number(m[1]),
        name: m[2]!,
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    });
}

export function latestVersion(): number {
  return listMigrations().at(-1)?.version ?? 0;
}

/**
 * Applies pending migrations, each in its own transaction, while holding a session
 * advisory lock so two processes starting together never race: the second waits, then
 * finds nothing to do. An edited migration that was already applied stops the start.
 */
export async function migrate(
  pool: Pool,
  onApplied: (m: { version: number; name: string }) => void = () => {},
) {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS moneta_migrations (
      version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const applied = new Map<number, string>();
    for (const row of (await client.query('SELECT version, checksum FROM moneta_migrations')).rows) {
      applied.set(row.version, row.checksum);
    }
    for (const m of listMigrations()) {
      const known = applied.get(m.version);
      if (known !== undefined) {
        if (known !== m.checksum) {
          throw new Error(
            `migration ${m.version}_${m.name} was changed after it was applied; add a new migration instead of editing it`,
          );
        }
        continue;
      }
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO moneta_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          m.checksum,
        ]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${m.version}_${m.name} failed: ${(err as Error).message}`);
      }
      onApplied(m);
    }
    // The job queue keeps its own schema; it migrates under our lock as well.
    await runWorkerMigrations({ pgPool: pool });
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {});
    client.release();
  }
}

/** For readiness: are all migrations this code knows about applied? */
export async function migrationsApplied(pool: Pool): Promise<boolean> {
  try {
    const { rows } = await pool.query('SELECT coalesce(max(version), 0) AS v FROM moneta_migrations');
    return Number(rows[0].v) >= latestVersion();
  } catch {
    return false;
  }
}
