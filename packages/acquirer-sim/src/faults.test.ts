import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { drawFaults, parseFaults } from './faults.ts';
import { authorizeBody, type Running, ref, startTemp } from './testing.ts';

let sim: Running;

beforeAll(async () => {
  sim = await startTemp();
});
afterEach(() => {
  sim.acquirer.setFaults({});
});
afterAll(async () => {
  await sim.stop();
});

async function inquire(reference: string) {
  return sim.api.get(`/v1/inquiries/${encodeURIComponent(reference)}`);
}

describe('fault injection', () => {
  it('error_rate: 500/503 and nothing processed (inquiry proves it with 404)', async () => {
    sim.acquirer.setFaults({ operations: { authorize: { error_rate: 1 } } });
    const body = authorizeBody();
    const res = await sim.api.post('/v1/authorizations', body);
    expect([500, 503]).toContain(res.status);
    expect(res.json.error.code).toBe('simulated_error');
    expect((await inquire(body.reference)).status).toBe(404);
    // Other operations are unaffected.
    expect((await sim.api.get('/v1/settlement-reports/2031-01-01')).status).toBe(200);
  });

  it('lost_response_rate: processed and journaled, the connection dropped, inquiry finds it', async () => {
    sim.acquirer.setFaults({ operations: { authorize: { lost_response_rate: 1 } } });
    const body = authorizeBody();
    const key = ref('key');
    await expect(sim.api.post('/v1/authorizations', body, key)).rejects.toThrow();
    sim.acquirer.setFaults({});
    const found = await inquire(body.reference);
    expect(found.status).toBe(200);
    expect(found.json).toMatchObject({ kind: 'authorization', transaction: { status: 'approved' } });
    // The retry replays the stored answer: still one authorization.
    const retry = await sim.api.post('/v1/authorizations', body, key);
    expect(retry.json.id).toBe(found.json.transaction.id);
    expect(sim.acquirer.records().authorizations.filter((t) => t.reference === body.reference)).toHaveLength(
      1,
    );
  });

  it('timeout_rate: processed at once, answered after hang_ms', async () => {
    sim.acquirer.setFaults({ operations: { authorize: { timeout_rate: 1, hang_ms: 400 } } });
    const impatient = authorizeBody();
    await expect(
      sim.api.post('/v1/authorizations', impatient, undefined, { signal: AbortSignal.timeout(100) }),
    ).rejects.toThrow();
    expect((await inquire(impatient.reference)).json.kind).toBe('authorization');

    const started = Date.now();
    const patient = await sim.api.post('/v1/authorizations', authorizeBody());
    expect(patient.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
  });

  it('latency_ms delays processing; an inquiry meanwhile waits instead of answering 404', async () => {
    sim.acquirer.setFaults({ operations: { authorize: { latency_ms: { min: 300, max: 300 } } } });
    const body = authorizeBody();
    const started = Date.now();
    const pending = sim.api.post('/v1/authorizations', body);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const inquiry = await inquire(body.reference);
    expect(inquiry.status).toBe(200);
    expect((await pending).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('outage: every /v1 request gets 503 without processing; admin and health still answer', async () => {
    const t = (await sim.api.post('/v1/authorizations', authorizeBody())).json;
    const until = new Date(Date.now() + 60_000).toISOString();
    const set = await sim.api.send('PUT', '/admin/faults', { outage_until: until });
    expect(set.status).toBe(200);
    expect(set.json).toEqual({ outage_until: until });
    const body = authorizeBody();
    const res = await sim.api.post('/v1/authorizations', body);
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe('acquirer_unavailable');
    expect((await sim.api.get(`/v1/authorizations/${t.id}`)).status).toBe(503);
    expect((await sim.api.get('/healthz')).status).toBe(200);
    expect((await sim.api.send('DELETE', '/admin/faults')).json).toEqual({});
    expect((await inquire(body.reference)).status).toBe(404);
    expect((await sim.api.get(`/v1/authorizations/${t.id}`)).status).toBe(200);
  });

  it('an outage that has ended no longer applies', async () => {
    sim.acquirer.setFaults({ outage_until: new Date(Date.now() - 1000).toISOString() });
    expect((await sim.api.post('/v1/authorizations', authorizeBody())).status).toBe(200);
  });

  it('faults are per operation: a capture fault leaves authorize alone', async () => {
    sim.acquirer.setFaults({ operations: { capture: { error_rate: 1 } } });
    const t = (await sim.api.post('/v1/authorizations', authorizeBody())).json;
    const capRef = ref('cap');
    const res = await sim.api.post(`/v1/authorizations/${t.id}/capture`, { reference: capRef });
    expect(res.status).toBeGreaterThanOrEqual(500);
    sim.acquirer.setFaults({ operations: { capture: { lost_response_rate: 1 } } });
    await expect(sim.api.post(`/v1/authorizations/${t.id}/capture`, { reference: capRef })).rejects.toThrow();
    sim.acquirer.setFaults({});
    expect((await inquire(capRef)).json).toMatchObject({
      kind: 'capture',
      transaction: { captured_amount: 10_000 },
    });
  });

  it('GET/PUT/DELETE /admin/faults validate and replace the settings', async () => {
    const faults = {
      operations: { refund: { latency_ms: { min: 1, max: 2 }, error_rate: 0.5, hang_ms: 10 } },
    };
    expect((await sim.api.send('PUT', '/admin/faults', faults)).json).toEqual(faults);
    expect((await sim.api.get('/admin/faults')).json).toEqual(faults);
    for (const bad of [
      { operations: { refund: { error_rate: 2 } } },
      { operations: { teleport: {} } },
      { operations: { refund: { latency_ms: { min: 5, max: 1 } } } },
      { outage_until: 'tomorrow' },
      { surprise: true },
    ]) {
      const res = await sim.api.send('PUT', '/admin/faults', bad);
      expect(res.status).toBe(400);
    }
    expect((await sim.api.get('/admin/faults')).json).toEqual(faults);
  });
});

describe('shutting down', () => {
  it('close() does not wait out a 30 s hang, and what was processed survives', async () => {
    const own = await startTemp();
    own.acquirer.setFaults({ operations: { authorize: { timeout_rate: 1, hang_ms: 30_000 } } });
    const body = authorizeBody();
    const hanging = own.api.post('/v1/authorizations', body).catch((err: unknown) => err);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await own.acquirer.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await hanging).toBeInstanceOf(Error);
    const again = await startTemp({ data_dir: own.dir });
    expect((await again.api.get(`/v1/inquiries/${body.reference}`)).status).toBe(200);
    await again.stop();
  });
});

describe('fault draws', () => {
  it('rates 0 and 1 are deterministic; a lost response wins over a hang', () => {
    const faults = parseFaults({ operations: { void: { timeout_rate: 1, lost_response_rate: 1 } } });
    expect(drawFaults(faults, 'void')).toMatchObject({ error_status: null, after: 'lose', hang_ms: 30_000 });
    expect(drawFaults(faults, 'refund')).toMatchObject({
      error_status: null,
      after: 'answer',
      latency_ms: 0,
    });
    const errors = parseFaults({ operations: { void: { error_rate: 1 } } });
    expect([500, 503]).toContain(drawFaults(errors, 'void').error_status);
  });

  it('latency is uniform between min and max', () => {
    const faults = parseFaults({ operations: { report: { latency_ms: { min: 10, max: 20 } } } });
    expect(drawFaults(faults, 'report', () => 0).latency_ms).toBe(10);
    expect(drawFaults(faults, 'report', () => 0.5).latency_ms).toBe(15);
  });
});
