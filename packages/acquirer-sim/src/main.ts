/**
 * CLI: acquirer-sim --name acme --port 0 --data-dir DIR [--api-key KEY] [--host HOST]
 * Env equivalents: ACQ_NAME, ACQ_PORT, ACQ_DATA_DIR, ACQ_API_KEY, ACQ_HOST, ACQ_FAULTS (JSON).
 *
 * stdout carries exactly one line, `READY <name> <base url>`, once listening (a parent waits
 * for it); everything else goes to stderr. SIGTERM/SIGINT: stop accepting, flush the journal,
 * exit 0. Exit 1 when the journal fails (a restart replays it), 2 on bad arguments.
 */
import { parseArgs } from 'node:util';
import { ApiError } from './errors.ts';
import { parseFaults } from './faults.ts';
import { startAcquirer } from './index.ts';
import type { Faults } from './types.ts';

function usage(message: string): never {
  process.stderr.write(
    `acquirer-sim: ${message}\n` +
      'usage: acquirer-sim --name NAME --data-dir DIR [--port PORT] [--host HOST] [--api-key KEY]\n',
  );
  process.exit(2);
}

function portFrom(text: string | undefined): number {
  if (text === undefined || text === '') return 0;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) usage(`invalid port ${JSON.stringify(text)}`);
  return port;
}

function faultsFrom(text: string | undefined): Faults | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  try {
    return parseFaults(JSON.parse(text));
  } catch (err) {
    usage(`ACQ_FAULTS: ${err instanceof ApiError || err instanceof SyntaxError ? err.message : String(err)}`);
  }
}

async function main(): Promise<void> {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        name: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'data-dir': { type: 'string' },
        'api-key': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    usage((err as Error).message);
  }
  const env = process.env;
  const name = values['name'] ?? env['ACQ_NAME'];
  const dataDir = values['data-dir'] ?? env['ACQ_DATA_DIR'];
  if (!name) usage('--name (or ACQ_NAME) is required');
  if (!dataDir) usage('--data-dir (or ACQ_DATA_DIR) is required');
  const log = (line: string) => process.stderr.write(`acquirer-sim ${name}: ${line}\n`);

  const acquirer = await startAcquirer({
    name,
    port: portFrom(values['port'] ?? env['ACQ_PORT']),
    host: values['host'] ?? env['ACQ_HOST'] ?? '127.0.0.1',
    data_dir: dataDir,
    api_key: values['api-key'] ?? env['ACQ_API_KEY'],
    faults: faultsFrom(env['ACQ_FAULTS']),
    log,
    onFatal: () => process.exit(1),
  });
  process.stdout.write(`READY ${name} ${acquirer.url}\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    acquirer.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log(`close failed: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Started by Moneta: stop when Moneta goes, even by kill -9 (its end of our stdin closes),
  // so no orphan keeps the data directory locked for the next start.
  if (process.env.ACQ_EXIT_WITH_PARENT === '1') {
    process.stdin.on('end', () => stop('parent exited'));
    process.stdin.resume();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`acquirer-sim: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
