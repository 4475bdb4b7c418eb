import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { EmbeddedPostgres } from '../src/db/embedded.ts';
import { createLogger } from '../src/ops/logger.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL URL with rights to create databases; each test file makes its own. */
    pg_admin_url: string;
  }
}

/**
 * One real PostgreSQL for the whole run: DATABASE_URL when set (CI runs the suite a second
 * time against the machine's PostgreSQL 15), otherwise an embedded one in a temp directory.
 */
export default async function setup(project: TestProject) {
  if (process.env.DATABASE_URL) {
    project.provide('pg_admin_url', process.env.DATABASE_URL);
    return;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'moneta-test-pg-'));
  const embedded = new EmbeddedPostgres(dir, createLogger('warn'));
  const url = await embedded.start();
  project.provide('pg_admin_url', url);
  return async () => {
    await embedded.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
