import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/**
 * Configuration comes from the environment and, optionally, a JSON file named by
 * MONETA_CONFIG whose keys are the same variable names. The environment wins.
 * Every value is validated at start; a bad one stops the start with a message that
 * names the variable and what it allows.
 */
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const pgUrl = z
  .string()
  .refine((v) => /^postgres(ql)?:\/\/.+/.test(v), 'not a postgres:// URL')
  .refine((v) => {
    try {
      new URL(v);
      return true;
    } catch {
      return false;
    }
  }, 'not a URL');
const redisUrl = z.string().refine((v) => /^rediss?:\/\/.+/.test(v), 'not a redis:// URL');

interface Spec {
  schema: z.ZodType;
  allowed: string;
  default?: string;
  /** Never echoed in messages (keys). */
  secret?: boolean;
}

const base64Key = /^[A-Za-z0-9+/]{43}=$/;
const kekList = z
  .string()
  .refine((v) =>
    v
      .split(',')
      .every((part) => /^\d{1,9}:/.test(part.trim()) && base64Key.test(part.trim().replace(/^\d+:/, ''))),
  );

const SPECS = {
  PORT: {
    schema: int(0, 65535),
    allowed: 'an integer from 0 to 65535 (0 picks a free port)',
    default: '4000',
  },
  HOST: {
    schema: z.string().min(1),
    allowed: 'a host name or IP address to listen on',
    default: '127.0.0.1',
  },
  DATABASE_URL: {
    schema: pgUrl,
    allowed: 'a postgres://user@host:port/db URL; unset to use embedded PostgreSQL',
  },
  MONETA_DATA_DIR: { schema: z.string().min(1), allowed: 'a directory path', default: './data' },
  MONETA_ROLE: { schema: z.enum(['all', 'api', 'worker']), allowed: 'all, api or worker', default: 'all' },
  LOG_LEVEL: {
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    allowed: 'fatal, error, warn, info, debug, trace or silent',
    default: 'info',
  },
  REDIS_URL: { schema: redisUrl, allowed: 'a redis:// or rediss:// URL; unset for in-memory rate limits' },
  MONETA_RATE_LIMIT_PER_SECOND: {
    schema: int(1, 10_000_000),
    allowed: 'an integer from 1 to 10000000 (requests per second per API key)',
    default: '100',
  },
  MONETA_RATE_LIMIT_BURST: {
    schema: int(1, 10_000_000),
    allowed: 'an integer from 1 to 10000000 (bucket size per API key)',
    default: '200',
  },
  MONETA_IDEMPOTENCY_RETENTION_HOURS: {
    schema: int(24, 24 * 365),
    allowed: 'an integer from 24 to 8760 (keys live at least 24 hours)',
    default: '24',
  },
  MONETA_IDEMPOTENCY_LOCK_TIMEOUT_S: {
    schema: int(5, 3600),
    allowed: 'an integer from 5 to 3600 (seconds before an abandoned request may be resumed)',
    default: '90',
  },
  MONETA_SHUTDOWN_TIMEOUT_MS: {
    schema: int(100, 600_000),
    allowed: 'an integer from 100 to 600000',
    default: '10000',
  },
  MONETA_DB_POOL_MAX: { schema: int(2, 1000), allowed: 'an integer from 2 to 1000', default: '20' },
  MONETA_BODY_LIMIT_BYTES: {
    schema: int(1024, 64 * 1024 * 1024),
    allowed: 'an integer from 1024 to 67108864',
    default: String(1024 * 1024),
  },
  MONETA_WORKER_CONCURRENCY: { schema: int(1, 100), allowed: 'an integer from 1 to 100', default: '4' },
  MONETA_DEMO_MERCHANT: { schema: bool, allowed: 'true or false', default: 'true' },
  MONETA_KEK: {
    schema: kekList,
    allowed:
      'VERSION:KEY[,VERSION:KEY…] with each KEY 32 random bytes in base64 (the highest version wraps new data keys)',
    secret: true,
  },
  MONETA_KEK_FILE: {
    schema: z.string().min(1),
    allowed: 'a path to the keyring file (default <MONETA_DATA_DIR>/keys/keyring.json, made on first start)',
  },
  MONETA_FINGERPRINT_KEY: {
    schema: z.string().regex(base64Key),
    allowed: '32 random bytes in base64 (the card fingerprint secret; required with MONETA_KEK)',
    secret: true,
  },
  MONETA_CVC_TTL_S: {
    schema: int(60, 86_400),
    allowed: 'an integer from 60 to 86400 (seconds an unused CVC is kept)',
    default: '3600',
  },
  MONETA_KEK_REFRESH_MS: {
    schema: int(100, 600_000),
    allowed:
      'an integer from 100 to 600000 (how often a process looks for a KEK version added by a rotation)',
    default: '10000',
  },
  MONETA_ACQUIRERS: {
    schema: z
      .string()
      .regex(/^[a-z][a-z0-9_-]{0,39}=https?:\/\/[^,\s]+(,[a-z][a-z0-9_-]{0,39}=https?:\/\/[^,\s]+)*$/),
    allowed:
      'NAME=URL[,NAME=URL…] of acquirer APIs; unset with role all starts the simulators acme and globex',
  },
  MONETA_ACQUIRER_API_KEY: {
    schema: z.string().min(1).max(200),
    allowed: 'the API key Moneta presents to the acquirers',
    default: 'sim_test_key',
    secret: true,
  },
  MONETA_ACQUIRER_TIMEOUT_MS: {
    schema: int(100, 120_000),
    allowed: 'an integer from 100 to 120000 (longest wait for an acquirer; past it the outcome is unknown)',
    default: '10000',
  },
  NATS_URL: {
    schema: z.string().regex(/^(nats|tls):\/\/[^\s]+$/),
    allowed: 'a nats:// or tls:// URL (several comma-separated); unset: events go to webhooks only',
  },
  MONETA_NATS_REPLICAS: {
    schema: int(1, 5),
    allowed: 'an integer from 1 to 5 (JetStream stream replicas; 3 on a production cluster)',
    default: '1',
  },
  MONETA_WEBHOOK_TIMEOUT_MS: {
    schema: int(100, 60_000),
    allowed:
      'an integer from 100 to 60000 (how long a webhook endpoint has to answer 2xx; Stripe allows 15000)',
    default: '15000',
  },
  MONETA_WEBHOOK_CONCURRENCY: {
    schema: int(1, 256),
    allowed: 'an integer from 1 to 256 (deliveries in flight at once to one webhook endpoint)',
    default: '16',
  },
  MONETA_WEBHOOK_ALLOW_PRIVATE: {
    schema: bool,
    allowed:
      'true or false (true lets webhook endpoints be loopback, private or link-local addresses: for development and tests only)',
    default: 'false',
  },
  MONETA_WEBHOOK_RETRY_SCALE: {
    schema: z.coerce.number().positive().max(1),
    allowed: 'a number above 0 and at most 1 (shrinks the 3-day retry schedule; for tests)',
    default: '1',
  },
  MONETA_AUTH_CACHE_TTL_MS: {
    schema: int(0, 60_000),
    allowed: 'an integer from 0 to 60000 (how long a verified API key is cached)',
    default: '5000',
  },
} satisfies Record<string, Spec>;

type Specs = typeof SPECS;
export type ConfigKey = keyof Specs;

export interface Config {
  port: number;
  host: string;
  database_url: string | undefined;
  data_dir: string;
  role: 'all' | 'api' | 'worker';
  log_level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  redis_url: string | undefined;
  rate_limit_per_second: number;
  rate_limit_burst: number;
  idempotency_retention_hours: number;
  idempotency_lock_timeout_s: number;
  shutdown_timeout_ms: number;
  db_pool_max: number;
  body_limit_bytes: number;
  worker_concurrency: number;
  demo_merchant: boolean;
  auth_cache_ttl_ms: number;
  kek: string | undefined;
  kek_file: string;
  fingerprint_key: string | undefined;
  cvc_ttl_s: number;
  kek_refresh_ms: number;
  acquirers: { name: string; url: string }[] | undefined;
  acquirer_api_key: string;
  acquirer_timeout_ms: number;
  nats_url: string | undefined;
  nats_replicas: number;
  webhook_timeout_ms: number;
  webhook_allow_private: boolean;
  webhook_concurrency: number;
  webhook_retry_scale: number;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function readConfigFile(file: string): Record<string, string> {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`MONETA_CONFIG: cannot read ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(
      `MONETA_CONFIG: ${file} is not valid JSON (expected an object such as {"PORT": 4000})`,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`MONETA_CONFIG: ${file} must hold a JSON object of variable names to values`);
  }
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (!(name in SPECS)) {
      throw new ConfigError(
        `MONETA_CONFIG: unknown setting ${name} in ${file}; allowed: ${Object.keys(SPECS).join(', ')}`,
      );
    }
    out[name] = String(value);
  }
  return out;
}

/** Reads and validates configuration. Throws ConfigError naming the first bad variable. */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: Partial<Record<ConfigKey, string>> = {},
): Config {
  const fromFile = env.MONETA_CONFIG ? readConfigFile(env.MONETA_CONFIG) : {};
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(SPECS) as [ConfigKey, Spec][]) {
    const raw = overrides[name] ?? nonEmpty(env[name]) ?? fromFile[name] ?? spec.default;
    if (raw === undefined) continue;
    const result = spec.schema.safeParse(raw);
    if (!result.success) {
      const shown = spec.secret ? '(hidden)' : JSON.stringify(raw);
      throw new ConfigError(`${name}=${shown} is not valid: allowed is ${spec.allowed}`);
    }
    values[name] = result.data;
  }
  // Fingerprints must come from one secret shared by every process; refuse to guess one.
  if (values.MONETA_KEK !== undefined && values.MONETA_FINGERPRINT_KEY === undefined) {
    throw new ConfigError(
      'MONETA_FINGERPRINT_KEY is required when MONETA_KEK is set: allowed is 32 random bytes in base64 (openssl rand -base64 32)',
    );
  }
  return {
    port: values.PORT as number,
    host: values.HOST as string,
    database_url: values.DATABASE_URL as string | undefined,
    data_dir: path.resolve(values.MONETA_DATA_DIR as string),
    role: values.MONETA_ROLE as Config['role'],
    log_level: values.LOG_LEVEL as Config['log_level'],
    redis_url: values.REDIS_URL as string | undefined,
    rate_limit_per_second: values.MONETA_RATE_LIMIT_PER_SECOND as number,
    rate_limit_burst: values.MONETA_RATE_LIMIT_BURST as number,
    idempotency_retention_hours: values.MONETA_IDEMPOTENCY_RETENTION_HOURS as number,
    idempotency_lock_timeout_s: values.MONETA_IDEMPOTENCY_LOCK_TIMEOUT_S as number,
    shutdown_timeout_ms: values.MONETA_SHUTDOWN_TIMEOUT_MS as number,
    db_pool_max: values.MONETA_DB_POOL_MAX as number,
    body_limit_bytes: values.MONETA_BODY_LIMIT_BYTES as number,
    worker_concurrency: values.MONETA_WORKER_CONCURRENCY as number,
    demo_merchant: values.MONETA_DEMO_MERCHANT as boolean,
    auth_cache_ttl_ms: values.MONETA_AUTH_CACHE_TTL_MS as number,
    kek: values.MONETA_KEK as string | undefined,
    kek_file: path.resolve(
      (values.MONETA_KEK_FILE as string | undefined) ??
        path.join(values.MONETA_DATA_DIR as string, 'keys', 'keyring.json'),
    ),
    fingerprint_key: values.MONETA_FINGERPRINT_KEY as string | undefined,
    cvc_ttl_s: values.MONETA_CVC_TTL_S as number,
    kek_refresh_ms: values.MONETA_KEK_REFRESH_MS as number,
    acquirers: (values.MONETA_ACQUIRERS as string | undefined)?.split(',').map((pair) => {
      const at = pair.indexOf('=');
      return { name: pair.slice(0, at), url: pair.slice(at + 1) };
    }),
    acquirer_api_key: values.MONETA_ACQUIRER_API_KEY as string,
    acquirer_timeout_ms: values.MONETA_ACQUIRER_TIMEOUT_MS as number,
    nats_url: values.NATS_URL as string | undefined,
    nats_replicas: values.MONETA_NATS_REPLICAS as number,
    webhook_timeout_ms: values.MONETA_WEBHOOK_TIMEOUT_MS as number,
    webhook_allow_private: values.MONETA_WEBHOOK_ALLOW_PRIVATE as boolean,
    webhook_concurrency: values.MONETA_WEBHOOK_CONCURRENCY as number,
    webhook_retry_scale: values.MONETA_WEBHOOK_RETRY_SCALE as number,
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

/** Names and allowed values of every setting, for `moneta config --help` and the docs. */
export function describeSettings(): { name: string; allowed: string; default: string | undefined }[] {
  return Object.entries(SPECS).map(([name, spec]: [string, Spec]) => ({
    name,
    allowed: spec.allowed,
    default: spec.default,
  }));
}
