import { type ChildProcess, spawn } from 'node:child_process';
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { JOURNAL_FILE, startAcquirer } from './acquirer.ts';
import { authorizeBody, card, client, ref, startTemp, tempDir } from './testing.ts';

const BIN = fileURLToPath(new URL('../bin/acquirer-sim.js', import.meta.url));
const PAN = '4242424242424242';
const CVC = '987';

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function journalText(dir: string): Promise<string> {
  return readFile(path.join(dir, JOURNAL_FILE), 'utf8');
}

function expectNoCardData(text: string): void {
  expect(text).not.toContain(PAN);
  expect(text).not.toContain(`"${CVC}"`);
  expect(text).not.toContain('"cvc"');
  expect(text).not.toContain('"number"');
}

describe('restart on the same data dir', () => {
  it('replays every transaction and stored response', async () => {
    const dir = await tempDir();
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const first = await startAcquirer({ name: 'acme', data_dir: dir });
    const api = client(first.url);
    const body = authorizeBody(PAN, { card: card(PAN, { cvc: CVC }) });
    const authKey = ref('key');
    const auth = await api.post('/v1/authorizations', body, authKey);
    const id = auth.json.id;
    const capRef = ref('cap');
    await api.post(`/v1/authorizations/${id}/capture`, { amount: 6000, reference: capRef });
    const refundKey = ref('key');
    const refundBody = { amount: 1000, reference: ref('rf') };
    const refund = await api.post(`/v1/authorizations/${id}/refunds`, refundBody, refundKey);
    const sale = await api.post('/v1/authorizations', authorizeBody(PAN, { amount: 900, capture: true }));
    expect(sale.json.captured_amount).toBe(900);
    const refusedKey = ref('key');
    const refusedBody = { amount: 9000, reference: ref('rf') };
    const refused = await api.post(`/v1/authorizations/${id}/refunds`, refusedBody, refusedKey);
    expect(refused.status).toBe(422);
    const before = first.records();
    await first.close();

    const second = await startAcquirer({ name: 'acme', data_dir: dir });
    cleanup.push(() => second.close());
    const api2 = client(second.url);
    expect(second.records()).toEqual(before);
    expect((await api2.post('/v1/authorizations', body, authKey)).text).toBe(auth.text);
    expect((await api2.post(`/v1/authorizations/${id}/refunds`, refundBody, refundKey)).text).toBe(
      refund.text,
    );
    const refusedAgain = await api2.post(`/v1/authorizations/${id}/refunds`, refusedBody, refusedKey);
    expect([refusedAgain.status, refusedAgain.text]).toEqual([422, refused.text]);
    expect((await api2.get(`/v1/inquiries/${capRef}`)).json.kind).toBe('capture');
    expect((await api2.get(`/v1/authorizations/${sale.json.id}`)).text).toBe(sale.text);
    // New work continues on top of the replayed state.
    const more = await api2.post(`/v1/authorizations/${id}/refunds`, { amount: 5000, reference: ref('rf') });
    expect(more.json.amount).toBe(5000);
    expect((await api2.get(`/v1/authorizations/${id}`)).json.refunded_amount).toBe(6000);
    expectNoCardData(await journalText(dir));
  });

  it('ignores and cuts a torn last line, then keeps appending cleanly', async () => {
    const sim = await startTemp();
    cleanup.push(() => rm(sim.dir, { recursive: true, force: true }));
    const auth = (await sim.api.post('/v1/authorizations', authorizeBody())).json;
    await sim.acquirer.close();
    const file = path.join(sim.dir, JOURNAL_FILE);
    const intact = await readFile(file, 'utf8');
    await appendFile(file, '{"v":1,"type":"authorization","authorization":{"id":"auth_torn');

    const again = await startAcquirer({ name: 'acme', data_dir: sim.dir });
    expect(await readFile(file, 'utf8')).toBe(intact);
    const api = client(again.url);
    expect((await api.get(`/v1/authorizations/${auth.id}`)).status).toBe(200);
    expect((await api.post('/v1/authorizations', authorizeBody())).status).toBe(200);
    await again.close();

    // A crash can also leave a zero-filled block: a damaged last line with nothing valid after it.
    await appendFile(file, `${'\u0000'.repeat(40)}\n`);
    const third = await startAcquirer({ name: 'acme', data_dir: sim.dir });
    cleanup.push(() => third.close());
    expect(third.records().authorizations).toHaveLength(2);
  });

  it('refuses to start when a damaged line is followed by valid ones', async () => {
    const sim = await startTemp();
    cleanup.push(() => rm(sim.dir, { recursive: true, force: true }));
    await sim.api.post('/v1/authorizations', authorizeBody());
    await sim.acquirer.close();
    const file = path.join(sim.dir, JOURNAL_FILE);
    const text = await readFile(file, 'utf8');
    await writeFile(file, `{"broken\n${text}`);
    await expect(startAcquirer({ name: 'acme', data_dir: sim.dir })).rejects.toThrow(/damaged line/);
  });

  it('refuses a second acquirer on a data dir in use', async () => {
    const sim = await startTemp();
    cleanup.push(() => sim.stop());
    await expect(startAcquirer({ name: 'globex', data_dir: sim.dir })).rejects.toThrow(/already used/);
  });
});

interface Child {
  proc: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function spawnSimulator(dir: string): Promise<Child> {
  const proc = spawn(process.execPath, [BIN, '--name', 'acme', '--port', '0', '--data-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ACQ_API_KEY: 'child_key' },
  });
  let out = '';
  let err = '';
  proc.stderr?.on('data', (chunk) => {
    err += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no READY line; stderr: ${err}`)), 8_000);
    proc.stdout?.on('data', (chunk) => {
      out += chunk;
      const match = /^READY acme (http:\/\/127\.0\.0\.1:\d+)\n/.exec(out);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    void exited.then(() => reject(new Error(`exited before READY; stderr: ${err}`)));
  });
  return { proc, url, stdout: () => out, stderr: () => err, exited };
}

describe('the acquirer-sim process', () => {
  it('loses nothing it answered when killed with SIGKILL right after a response', async () => {
    const dir = await tempDir();
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const child = await spawnSimulator(dir);
    cleanup.push(async () => {
      if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL');
    });
    const api = client(child.url, 'child_key');
    expect((await client(child.url).post('/v1/authorizations', authorizeBody())).status).toBe(401);
    const body = authorizeBody(PAN, { card: card(PAN, { cvc: CVC }) });
    const key = ref('key');
    const answered = await api.post('/v1/authorizations', body, key);
    child.proc.kill('SIGKILL');
    expect(answered.status).toBe(200);
    expect((await child.exited).signal).toBe('SIGKILL');
    expect(child.stdout()).toBe(`READY acme ${child.url}\n`);
    expect(child.stderr()).not.toContain(PAN);

    const revived = await startAcquirer({ name: 'acme', data_dir: dir, api_key: 'child_key' });
    cleanup.push(() => revived.close());
    const api2 = client(revived.url, 'child_key');
    expect((await api2.get(`/v1/inquiries/${encodeURIComponent(body.reference)}`)).json.transaction).toEqual(
      answered.json,
    );
    // Same key derivation after the restart: the retry still matches and replays.
    expect((await api2.post('/v1/authorizations', body, key)).text).toBe(answered.text);
    expectNoCardData(await journalText(dir));
  });

  it('flushes and exits 0 on SIGTERM', async () => {
    const dir = await tempDir();
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const child = await spawnSimulator(dir);
    const api = client(child.url, 'child_key');
    const answers = await Promise.all(
      [1, 2, 3, 4, 5].map(() => api.post('/v1/authorizations', authorizeBody())),
    );
    child.proc.kill('SIGTERM');
    expect(await child.exited).toEqual({ code: 0, signal: null });
    const lines = (await journalText(dir)).trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).authorization.id).sort()).toEqual(
      answers.map((a) => a.json.id).sort(),
    );
  });
});
