/** Test helpers: an acquirer on a temp dir and a small HTTP client for its API. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startAcquirer } from './acquirer.ts';
import type { Acquirer, AcquirerOptions } from './types.ts';

export const API_KEY = 'sim_test_key';

export interface Answer {
  status: number;
  text: string;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read fields freely
  json: any;
}

export interface Client {
  post(path: string, body: unknown, key?: string | null, init?: RequestInit): Promise<Answer>;
  get(path: string, init?: RequestInit): Promise<Answer>;
  send(method: string, path: string, body?: unknown, init?: RequestInit): Promise<Answer>;
}

export function client(url: string, apiKey: string | null = API_KEY): Client {
  const send = async (method: string, p: string, body?: unknown, init: RequestInit = {}): Promise<Answer> => {
    const headers = new Headers(init.headers);
    if (apiKey !== null) headers.set('authorization', `Bearer ${apiKey}`);
    if (body !== undefined) headers.set('content-type', 'application/json');
    const res = await fetch(url + p, {
      ...init,
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // CSV or empty
    }
    return { status: res.status, text, headers: res.headers, json };
  };
  return {
    send,
    get: (p, init) => send('GET', p, undefined, init),
    post: (p, body, key, init = {}) => {
      const headers = new Headers(init.headers);
      if (key !== null) headers.set('idempotency-key', key ?? `key-${Math.random()}`);
      return send('POST', p, body, { ...init, headers });
    },
  };
}

export async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'acquirer-sim-test-'));
}

export interface Running {
  acquirer: Acquirer;
  dir: string;
  api: Client;
  /** Closes the acquirer and removes its directory. */
  stop(): Promise<void>;
}

export async function startTemp(opts: Partial<AcquirerOptions> = {}): Promise<Running> {
  const dir = opts.data_dir ?? (await tempDir());
  const acquirer = await startAcquirer({ name: 'acme', data_dir: dir, ...opts });
  return {
    acquirer,
    dir,
    api: client(acquirer.url, opts.api_key ?? API_KEY),
    stop: async () => {
      await acquirer.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let counter = 0;

/** A reference nobody used yet in this process. */
export function ref(prefix = 'ref'): string {
  counter += 1;
  return `${prefix}_${process.pid}_${counter}`;
}

export function card(number: string, extra: Record<string, unknown> = {}) {
  return { number, exp_month: 12, exp_year: 2099, cvc: '123', ...extra };
}

export function authorizeBody(number = '4242424242424242', overrides: Record<string, unknown> = {}) {
  return { reference: ref('pay'), amount: 10_000, currency: 'usd', card: card(number), ...overrides };
}
