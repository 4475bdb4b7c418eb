import { Command, InvalidArgumentError, Option } from 'commander';
import { type AuditContext, appendAudit, verifyAudit } from '../audit/index.ts';
import { type Config, ConfigError, describeSettings, loadConfig } from '../config/index.ts';
import { latestVersion, migrate } from '../db/migrate.ts';
import {
  endpointScope,
  listDeliveries,
  type ResendTarget,
  resend,
  resendTarget,
  serializeDelivery,
} from '../events/index.ts';
import { verifyLedger } from '../ledger/index.ts';
import { isIdOf } from '../lib/ids.ts';
import { createMerchant, rollKey } from '../merchants/index.ts';
import { createLogger } from '../ops/logger.ts';
import { type Database, openDatabase, startMoneta } from '../service.ts';
import { openKeyProvider, type RotationProgress, rotateKek, Vault } from '../vault/index.ts';
import { startBanner } from './banner.ts';

/** Exit codes: 0 success, 1 the operation failed, 2 bad usage or configuration. */
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
/** Who the audit log names for a change made through this command. */
const CLI_ACTOR: AuditContext = { actor: 'cli', origin: 'cli' };

function fail(message: string, code = EXIT_FAILURE): never {
  process.stderr.write(`moneta: ${message}\n`);
  process.exit(code);
}

function config(overrides: Parameters<typeof loadConfig>[1] = {}): Config {
  try {
    return loadConfig(process.env, overrides);
  } catch (err) {
    if (err instanceof ConfigError) fail(`configuration error: ${err.message}`, EXIT_USAGE);
    throw err;
  }
}

function integer(name: string, min: number, max: number) {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}.`);
    }
    return n;
  };
}

/** Opens the database for a one-shot command, with logs kept to warnings so output stays readable. */
async function withDatabase<T>(fn: (db: Database) => Promise<T>): Promise<T> {
  const cfg = config({ LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' });
  const log = createLogger(cfg.log_level);
  const db = await openDatabase(cfg, log, 'moneta-cli');
  try {
    await migrate(db.pool);
    return await fn(db);
  } finally {
    await db.close();
  }
}

function print(json: boolean, value: unknown, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`);
}

const program = new Command('moneta')
  .description('Moneta: a self-hosted payment platform')
  .showHelpAfterError('(run "moneta --help" for usage)')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE));

program
  .command('start')
  .description('start Moneta (embedded PostgreSQL unless DATABASE_URL is set)')
  .addOption(new Option('--role <role>', 'which parts to run').choices(['all', 'api', 'worker']))
  .option('--port <port>', 'HTTP port (default: PORT or 4000)', integer('--port', 0, 65535))
  .action(async (opts: { role?: string; port?: number }) => {
    const overrides: Parameters<typeof loadConfig>[1] = {};
    if (opts.role) overrides.MONETA_ROLE = opts.role;
    if (opts.port !== undefined) overrides.PORT = String(opts.port);
    const cfg = config(overrides);
    const started_ms = Date.now();
    const moneta = await startMoneta(cfg).catch((err: Error) =>
      fail(
        `could not start: ${err.message}\nCheck DATABASE_URL / MONETA_DATA_DIR, or run with LOG_LEVEL=debug for details.`,
      ),
    );
    process.stderr.write(startBanner(moneta, Date.now() - started_ms));
    let signals = 0;
    const onSignal = (signal: string) => {
      signals += 1;
      if (signals > 1) {
        process.stderr.write(`moneta: second ${signal}, exiting now\n`);
        process.exit(EXIT_FAILURE);
      }
      moneta
        .stop()
        .then(() => process.exit(0))
        .catch((err) => fail(`shutdown failed: ${(err as Error).message}`));
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  });

program
  .command('migrate')
  .description('apply pending database migrations and exit')
  .action(async () => {
    await withDatabase(async () => {});
    process.stdout.write(`database is at migration ${latestVersion()}\n`);
  });

program
  .command('config')
  .description('list the settings Moneta reads from the environment or MONETA_CONFIG')
  .action(() => {
    for (const s of describeSettings()) {
      process.stdout.write(
        `${s.name.padEnd(36)} ${s.allowed}${s.default ? ` (default ${s.default})` : ''}\n`,
      );
    }
  });

const merchants = program.command('merchants').description('manage merchants');
merchants
  .command('create')
  .description('create a merchant and print its API keys (shown once)')
  .requiredOption('--name <name>', 'merchant name (1 to 200 characters)')
  .option('--live', 'also issue live-mode keys')
  .option('--platform', "the platform's own account: its secret keys may use the ledger API")
  .option('--json', 'print {"id","secret_key","publishable_key"} as JSON')
  .action(async (opts: { name: string; live?: boolean; platform?: boolean; json?: boolean }) => {
    if (opts.name.trim().length === 0 || opts.name.length > 200) {
      fail('--name must be 1 to 200 characters', EXIT_USAGE);
    }
    const created = await withDatabase((db) =>
      createMerchant(
        db.pool,
        {
          name: opts.name,
          with_live_keys: opts.live ?? false,
          is_platform: opts.platform ?? false,
        },
        CLI_ACTOR,
      ),
    );
    const out: Record<string, string> = {
      id: created.merchant.id,
      secret_key: created.test.secret_key,
      publishable_key: created.test.publishable_key,
    };
    if (created.live) {
      out.live_secret_key = created.live.secret_key;
      out.live_publishable_key = created.live.publishable_key;
    }
    print(
      opts.json ?? false,
      out,
      [
        `Created merchant ${out.id} (${created.merchant.name}). Keys are shown once; store them now.`,
        ...Object.entries(out)
          .filter(([k]) => k !== 'id')
          .map(([k, v]) => `  ${k.padEnd(22)} ${v}`),
      ].join('\n'),
    );
  });

const keys = program.command('keys').description('manage API keys');
keys
  .command('roll')
  .description('issue a new key; the old one keeps working until it expires')
  .requiredOption('--merchant <id>', 'merchant id (acct_…)')
  .option(
    '--expire-in-hours <n>',
    'hours the old key stays valid (0 = now)',
    integer('--expire-in-hours', 0, 720),
    24,
  )
  .addOption(new Option('--type <type>', 'key type').choices(['secret', 'publishable']).default('secret'))
  .addOption(new Option('--mode <mode>', 'test or live').choices(['test', 'live']).default('test'))
  .option('--json', 'print the result as JSON')
  .action(
    async (opts: {
      merchant: string;
      expireInHours: number;
      type: 'secret' | 'publishable';
      mode: string;
      json?: boolean;
    }) => {
      if (!/^acct_[0-9A-Z]{26}$/.test(opts.merchant)) {
        fail(`--merchant must be a merchant id like acct_01H…; got '${opts.merchant}'`, EXIT_USAGE);
      }
      const rolled = await withDatabase((db) =>
        rollKey(
          db.pool,
          {
            merchant_id: opts.merchant,
            kind: opts.type,
            livemode: opts.mode === 'live',
            expire_in_hours: opts.expireInHours,
          },
          CLI_ACTOR,
        ),
      ).catch((err: Error) => fail(err.message));
      const when = rolled.previous_keys_expire_at.toISOString();
      print(
        opts.json ?? false,
        { key: rolled.key, previous_keys: rolled.previous_key_count, previous_keys_expire_at: when },
        `New ${opts.mode} ${opts.type} key (shown once): ${rolled.key}\n` +
          (rolled.previous_key_count > 0
            ? `${rolled.previous_key_count} previous key(s) stop working at ${when}.`
            : 'There was no previous key of this type and mode.'),
      );
    },
  );

keys
  .command('rotate-kek')
  .description(
    're-wrap every card data key under a new key-encryption key, then retire the old one (resumes an interrupted rotation)',
  )
  .option(
    '--batch-size <n>',
    'data keys re-wrapped per transaction',
    integer('--batch-size', 1, 10_000),
    1_000,
  )
  .option('--json', 'print the result as JSON')
  .action(async (opts: { batchSize: number; json?: boolean }) => {
    const json = opts.json ?? false;
    const cfg = config({ LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' });
    const interrupt = new AbortController();
    process.once('SIGINT', () => interrupt.abort(new Error('interrupted')));
    process.once('SIGTERM', () => interrupt.abort(new Error('interrupted')));
    const bar = progressBar(json);
    const result = await withDatabase(async (db) => {
      const keyring = await openKeyProvider(cfg, (message) => process.stderr.write(`moneta: ${message}\n`));
      // Never rotate with a keyring that cannot open what the database holds.
      await new Vault(db.pool, keyring, {
        cvc_ttl_s: cfg.cvc_ttl_s,
        log: createLogger('silent'),
      }).checkKeyring();
      return rotateKek(db.pool, keyring, {
        batch_size: opts.batchSize,
        // Running processes look for a new version every MONETA_KEK_REFRESH_MS; give them twice that.
        settle_ms: 2 * cfg.kek_refresh_ms + 1_000,
        actor: CLI_ACTOR.actor,
        origin: CLI_ACTOR.origin,
        signal: interrupt.signal,
        on_progress: bar,
      });
    }).catch((err: Error) =>
      fail(
        interrupt.signal.aborted
          ? 'rotation interrupted; every data key is readable. Run `moneta keys rotate-kek` again to finish it.'
          : `${err.message}\nNothing was retired; run the command again once the cause is fixed.`,
      ),
    );
    if (!json && process.stderr.isTTY) process.stderr.write('\n');
    print(
      json,
      result,
      `${result.added ? 'Rotated' : 'Finished rotating'} to KEK version ${result.version}: ${result.rewrapped} data key(s) re-wrapped; ` +
        (result.retired.length > 0
          ? `retired version(s) ${result.retired.join(', ')}.`
          : 'nothing to retire.'),
    );
  });

/** A progress bar on a terminal; a line per phase and per tenth otherwise. */
function progressBar(json: boolean): (p: RotationProgress) => void {
  let last_line = '';
  return (p) => {
    if (json) return;
    const fraction = p.total === 0 ? 1 : p.done / p.total;
    if (process.stderr.isTTY) {
      const filled = Math.round(fraction * 30);
      process.stderr.write(
        `\r  ${p.phase.padEnd(7)} [${'#'.repeat(filled)}${'-'.repeat(30 - filled)}] ${p.done}/${p.total}`,
      );
      return;
    }
    const line = `  ${p.phase}: ${Math.floor(fraction * 10) * 10}% (${p.done}/${p.total})`;
    if (line !== last_line) process.stderr.write(`${line}\n`);
    last_line = line;
  };
}

const ledger = program.command('ledger').description('inspect the double-entry ledger');
ledger
  .command('verify')
  .description('check every ledger invariant; exits 1 if any is violated')
  .option('--json', 'print the result as JSON')
  .action(async (opts: { json?: boolean }) => {
    const json = opts.json ?? false;
    const result = await withDatabase((db) =>
      verifyLedger(db.pool, {
        // Progress on stderr: a large ledger takes a while (chunks of 2,000 accounts).
        onAccounts: (checked) => {
          if (!json && process.stderr.isTTY) process.stderr.write(`\r  accounts checked: ${checked}`);
        },
        onCheck: (check, violations) => {
          if (!json && process.stderr.isTTY && check === 'account_balances_match_transfers')
            process.stderr.write('\n');
          if (!json)
            process.stderr.write(
              `  ${check.padEnd(46)} ${violations === 0 ? 'ok' : `${violations} violation(s)`}\n`,
            );
        },
      }),
    ).catch((err: Error) => fail(err.message));
    if (json) print(true, { ok: result.length === 0, violations: result }, '');
    else if (result.length === 0) print(false, null, 'Ledger verified: every invariant holds.');
    else {
      for (const v of result) process.stdout.write(`${v.check}: ${JSON.stringify(v.detail)}\n`);
      process.stdout.write(
        `${result.length} violation(s). Stop posting, keep the database as it is, and compare the accounts above with their transfers (docs/ledger.md, "When verify fails").\n`,
      );
    }
    if (result.length > 0) process.exit(EXIT_FAILURE);
  });

const audit = program.command('audit').description('inspect the audit log');
audit
  .command('verify')
  .description('check the hash chain of the audit log; exits 1 naming each bad row')
  .option('--json', 'print the result as JSON')
  .action(async (opts: { json?: boolean }) => {
    const json = opts.json ?? false;
    const findings = await withDatabase((db) =>
      verifyAudit(db.pool, {
        // Progress on stderr: a long log takes a while (batches of 5,000 rows).
        on_progress: (checked, total) => {
          if (!json && process.stderr.isTTY)
            process.stderr.write(`\r  audit rows checked: ${checked} of ${total}`);
        },
      }),
    ).catch((err: Error) => fail(err.message));
    if (!json && process.stderr.isTTY) process.stderr.write('\n');
    if (json) print(true, { ok: findings.length === 0, findings }, '');
    else if (findings.length === 0) print(false, null, 'Audit log verified: the hash chain is unbroken.');
    else {
      for (const f of findings)
        process.stdout.write(`audit ${f.seq === 0 ? 'chain head' : `row ${f.seq}`}: ${f.problem}\n`);
      process.stdout.write(
        `${findings.length} finding(s). Keep the database as it is and follow "When audit verify fails" in docs/operations.md.\n`,
      );
    }
    if (findings.length > 0) process.exit(EXIT_FAILURE);
  });

function instant(name: string) {
  return (value: string) => {
    const ms = Date.parse(value);
    if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(ms)) {
      throw new InvalidArgumentError(`${name} must be a date and time such as 2026-11-20T00:00:00Z.`);
    }
    return new Date(ms);
  };
}

function endpointId(value: string): string {
  if (!isIdOf('we', value))
    throw new InvalidArgumentError('--endpoint must be a webhook endpoint id (we_…).');
  return value;
}

const webhooks = program.command('webhooks').description('inspect and resend webhook deliveries');
webhooks
  .command('resend')
  .description('send one event again, or every failed delivery of a time range, to an endpoint')
  .requiredOption('--endpoint <id>', 'the webhook endpoint (we_…)', endpointId)
  .option('--event <id>', 'one event to send again (evt_…)')
  .option(
    '--since <time>',
    'failed deliveries of events created at or after this time (ISO 8601)',
    instant('--since'),
  )
  .option('--until <time>', '… and before this time (ISO 8601)', instant('--until'))
  .option('--json', 'print the result as JSON')
  .action(async (opts: { endpoint: string; event?: string; since?: Date; until?: Date; json?: boolean }) => {
    let what: ResendTarget;
    try {
      what = resendTarget(opts);
    } catch (err) {
      // The same rule as the API's, said with this command's options.
      fail(`${(err as Error).message.replace(/\b(event|since|until)\b/g, '--$1')}`, EXIT_USAGE);
    }
    const queued = await withDatabase(async (db) => {
      const scope = await endpointScope(db.pool, opts.endpoint);
      if (!scope)
        fail(
          `no webhook endpoint ${opts.endpoint} (run "moneta webhooks deliveries --endpoint …" with an id from GET /v1/webhook_endpoints).`,
        );
      const n = await resend(db.pool, scope, opts.endpoint, what);
      await appendAudit(db.pool, {
        ...CLI_ACTOR,
        action: 'webhooks.resend',
        outcome: 'success',
        merchant_id: scope.merchant_id,
        object_type: 'webhook_endpoint',
        object_id: opts.endpoint,
        details: {
          queued: n,
          ...(opts.event ? { event: opts.event } : { since: opts.since, until: opts.until }),
        },
      });
      return n;
    }).catch((err: Error) => fail(err.message));
    print(
      opts.json ?? false,
      { endpoint: opts.endpoint, queued },
      `Queued ${queued} deliver${queued === 1 ? 'y' : 'ies'} to ${opts.endpoint}; a running Moneta (role all or worker) sends them within a second. Follow them with "moneta webhooks deliveries --endpoint ${opts.endpoint}".`,
    );
  });

webhooks
  .command('deliveries')
  .description("list an endpoint's deliveries, newest event first")
  .requiredOption('--endpoint <id>', 'the webhook endpoint (we_…)', endpointId)
  .addOption(
    new Option('--status <status>', 'only deliveries in this state').choices([
      'pending',
      'succeeded',
      'failed',
    ]),
  )
  .option('--limit <n>', 'at most this many (1–100)', integer('--limit', 1, 100), 20)
  .option('--json', 'print the result as JSON')
  .action(
    async (opts: {
      endpoint: string;
      status?: 'pending' | 'succeeded' | 'failed';
      limit: number;
      json?: boolean;
    }) => {
      const page = await withDatabase(async (db) => {
        const scope = await endpointScope(db.pool, opts.endpoint);
        if (!scope) fail(`no webhook endpoint ${opts.endpoint}.`);
        return listDeliveries(db.pool, scope, opts.endpoint, { status: opts.status, limit: opts.limit });
      }).catch((err: Error) => fail(err.message));
      const rows = page.data.map(serializeDelivery);
      const human =
        rows.length === 0
          ? 'No deliveries.'
          : rows
              .map(
                (d) =>
                  `${d.event}  ${String(d.event_type).padEnd(36)} ${String(d.status).padEnd(9)} attempts ${d.attempts}  last ${d.last_status_code ?? d.last_error ?? '-'}`,
              )
              .join('\n');
      print(opts.json ?? false, { data: rows, has_more: page.has_more }, human);
    },
  );

try {
  await program.parseAsync(process.argv);
} catch (err) {
  fail((err as Error).message);
}
