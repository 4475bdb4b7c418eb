import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { assert } from '../lib/errors.ts';
import type { Logger } from '../ops/logger.ts';

/** Acquirer simulators `moneta start` runs beside itself when MONETA_ACQUIRERS is unset. */
export const DEFAULT_SIMULATORS = ['acme', 'globex'] as const;
const MAX_STDERR_CHARS = 16_384;
const READY_TIMEOUT_MS = 15_000;
/** Tries a few times: after a crash, the previous simulator may still be letting go of its directory. */
const START_ATTEMPTS = 12;
const START_RETRY_MS = 500;

export interface RunningSimulators {
  acquirers: { name: string; url: string }[];
  stop(): Promise<void>;
}

/**
 * Starts each simulator as its own process (a separate party with its own journal under
 * `data_dir/acquirers/<name>`, never Moneta's database) and waits for its READY line.
 */
export async function startSimulators(
  names: readonly string[],
  data_dir: string,
  api_key: string,
  log: Logger,
): Promise<RunningSimulators> {
  const bin = createRequire(import.meta.url).resolve('@moneta/acquirer-sim/bin/acquirer-sim.js');
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.map((c) => stopChild(c)));
  };
  try {
    const acquirers = await Promise.all(
      names.map(async (name) => {
        const url = await startOne(bin, name, path.join(data_dir, 'acquirers', name), api_key, log, children);
        log.info({ acquirer: name, url }, 'acquirer simulator started');
        return { name, url };
      }),
    );
    return { acquirers, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startOne(
  bin: string,
  name: string,
  dir: string,
  api_key: string,
  log: Logger,
  children: ChildProcess[],
): Promise<string> {
  for (let attempt = 1; ; attempt += 1) {
    const child = spawn(
      process.execPath,
      [bin, '--name', name, '--port', '0', '--data-dir', dir, '--api-key', api_key],
      {
        // Our end of its stdin closes when we exit, however we exit: the simulator then stops too.
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, ACQ_EXIT_WITH_PARENT: '1' },
      },
    );
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      // Kept only for a start-up failure's message, and bounded: the simulator lives as long as we do.
      if (stderr.length < MAX_STDERR_CHARS) stderr += chunk.toString();
      log.debug({ acquirer: name, stderr: chunk.toString().trim() }, 'acquirer simulator');
    });
    try {
      return await readyUrl(child, name);
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !/in use by process/.test(stderr)) {
        throw new Error(`${(err as Error).message}: ${stderr.trim()}`);
      }
      await new Promise((r) => setTimeout(r, START_RETRY_MS));
    }
  }
}

function readyUrl(child: ChildProcess, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`acquirer simulator ${name} did not start in ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    );
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /READY (\S+) (\S+)/.exec(out);
      if (m) {
        // Read once: later output is drained unread, not collected for the process's lifetime.
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        clearTimeout(timer);
        assert(m[1] === name, 'the simulator answers with its own name');
        resolve(m[2]!);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`acquirer simulator ${name} exited with ${code} before it was ready`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
