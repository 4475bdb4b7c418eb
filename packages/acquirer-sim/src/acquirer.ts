/**
 * startAcquirer: one simulated acquirer (journal replay, state, HTTP front) on one data dir.
 * Used in-process by tests and by the CLI (src/main.ts).
 */
import { mkdir, open, readFile, realpath, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseFaults } from './faults.ts';
import { fingerprintKey } from './fingerprint.ts';
import { HttpFront } from './http.ts';
import { Journal } from './journal.ts';
import { Simulator } from './simulator.ts';
import { type JournalEvent, State } from './state.ts';
import type { Acquirer, AcquirerOptions, Faults } from './types.ts';

export const DEFAULT_API_KEY = 'sim_test_key';
export const DEFAULT_HOST = '127.0.0.1';
export const JOURNAL_FILE = 'journal.jsonl';
const LOCK_FILE = 'LOCK';

/** Data dirs open in this process (the pid in LOCK cannot tell two in-process instances apart). */
const openDirs = new Set<string>();

export async function startAcquirer(opts: AcquirerOptions): Promise<Acquirer> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(opts.name)) {
    throw new Error('an acquirer name is 1–63 letters, digits, "-" or "_"');
  }
  const faults = parseFaults(opts.faults ?? {});
  const now = opts.now ?? Date.now;
  const log = opts.log ?? (() => undefined);
  const apiKey = opts.api_key ?? DEFAULT_API_KEY;

  await mkdir(opts.data_dir, { recursive: true });
  const dir = await realpath(opts.data_dir);
  const unlock = await lockDataDir(dir);
  let journal: Journal | undefined;
  try {
    const state = new State();
    let sim: Simulator | undefined;
    const opened = await Journal.open(
      path.join(dir, JOURNAL_FILE),
      (event, seq) => state.apply(event as JournalEvent, seq),
      (err) => {
        log(`journal failed, refusing all requests: ${err.message}`);
        sim?.fail(err);
        opts.onFatal?.(err);
      },
    );
    journal = opened.journal;
    log(
      `replayed ${opened.replay.events} journal events` +
        (opened.replay.truncated_bytes > 0
          ? `, cut a torn tail of ${opened.replay.truncated_bytes} bytes`
          : ''),
    );
    sim = new Simulator(state, journal, fingerprintKey(apiKey), now, opts.sales ?? true);
    const front = new HttpFront({ sim, api_key: apiKey === '' ? null : apiKey, faults, now, log });
    const url = await listen(front, opts.port ?? 0, opts.host ?? DEFAULT_HOST);
    const openJournal = journal;
    let closing: Promise<void> | null = null;
    return {
      url,
      setFaults: (f: Faults) => front.setFaults(f),
      records: () => sim.records(),
      close: () => {
        closing ??= (async () => {
          await front.close();
          await openJournal.close();
          await unlock();
        })();
        return closing;
      },
    };
  } catch (err) {
    await journal?.close();
    await unlock();
    throw err;
  }
}

function listen(front: HttpFront, port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    front.server.once('error', reject);
    front.server.listen(port, host, () => {
      front.server.off('error', reject);
      const address = front.server.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve(`http://${shownHost}:${address.port}`);
    });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One simulator per data dir: two writers would interleave their journal lines. A LOCK file
 * holds the owner's pid; one left by a dead process (kill -9) is taken over.
 */
async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  if (openDirs.has(dir)) throw new Error(`${dir} is already used by an acquirer in this process`);
  const file = path.join(dir, LOCK_FILE);
  // Two passes: create, or remove a stale lock and create again.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      openDirs.add(dir);
      return async () => {
        openDirs.delete(dir);
        await rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
        throw new Error(`${dir} is in use by process ${owner}`);
      }
      await rm(file, { force: true });
    }
  }
  throw new Error(`could not lock ${dir}`);
}
