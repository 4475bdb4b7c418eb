/**
 * Fault injection: validation of a `Faults` document and the per-request draw. Draws use
 * Math.random, so tests get determinism by setting rates to 0 or 1.
 */
import { badParam } from './errors.ts';
import { DEFAULT_HANG_MS, MAX_FAULT_DELAY_MS } from './limits.ts';
import { type Faults, OPERATIONS, type Operation, type OperationFaults } from './types.ts';

/** What happens to one request. */
export interface FaultDraw {
  latency_ms: number;
  /** 500 or 503 answered without processing; null: process it. */
  error_status: 500 | 503 | null;
  /** After processing: answer normally, hang then answer, or drop the connection. */
  after: 'answer' | 'hang' | 'lose';
  hang_ms: number;
}

const NO_FAULT: FaultDraw = { latency_ms: 0, error_status: null, after: 'answer', hang_ms: 0 };

type Fields = Record<string, unknown>;

function fields(value: unknown, param: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badParam(param, `${param} must be a JSON object.`);
  }
  return value as Fields;
}

function onlyKnown(value: Fields, known: readonly string[], param: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw badParam(`${param}.${key}`, `Unknown fault setting ${param}.${key}.`);
  }
}

function rate(value: unknown, param: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw badParam(param, `${param} must be a number from 0 to 1.`);
  }
  return value;
}

function delay(value: unknown, param: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_FAULT_DELAY_MS) {
    throw badParam(param, `${param} must be a number of milliseconds from 0 to ${MAX_FAULT_DELAY_MS}.`);
  }
  return value;
}

function operationFaults(value: unknown, param: string): OperationFaults {
  const f = fields(value, param);
  onlyKnown(f, ['latency_ms', 'error_rate', 'timeout_rate', 'lost_response_rate', 'hang_ms'], param);
  const out: OperationFaults = {};
  if (f['latency_ms'] !== undefined) {
    const l = fields(f['latency_ms'], `${param}.latency_ms`);
    onlyKnown(l, ['min', 'max'], `${param}.latency_ms`);
    const min = delay(l['min'], `${param}.latency_ms.min`);
    const max = delay(l['max'], `${param}.latency_ms.max`);
    if (min > max) throw badParam(`${param}.latency_ms`, `${param}.latency_ms.min must not exceed max.`);
    out.latency_ms = { min, max };
  }
  const rates = ['error_rate', 'timeout_rate', 'lost_response_rate'] as const;
  for (const name of rates) {
    const r = rate(f[name], `${param}.${name}`);
    if (r !== undefined) out[name] = r;
  }
  if (f['hang_ms'] !== undefined) out.hang_ms = delay(f['hang_ms'], `${param}.hang_ms`);
  return out;
}

/** Validates (400 `parameter_invalid` naming the setting) and returns a normalized copy. */
export function parseFaults(value: unknown): Faults {
  const f = fields(value ?? {}, 'faults');
  onlyKnown(f, ['outage_until', 'operations'], 'faults');
  const out: Faults = {};
  const until = f['outage_until'];
  if (until !== undefined && until !== null) {
    if (typeof until !== 'string' || Number.isNaN(Date.parse(until))) {
      throw badParam('faults.outage_until', 'faults.outage_until must be an ISO 8601 time or null.');
    }
    out.outage_until = until;
  }
  if (f['operations'] !== undefined) {
    const ops = fields(f['operations'], 'faults.operations');
    onlyKnown(ops, OPERATIONS, 'faults.operations');
    out.operations = {};
    for (const op of OPERATIONS) {
      if (ops[op] !== undefined) out.operations[op] = operationFaults(ops[op], `faults.operations.${op}`);
    }
  }
  return out;
}

export function inOutage(faults: Faults, nowMs: number): boolean {
  return faults.outage_until != null && nowMs < Date.parse(faults.outage_until);
}

/** Independent draws per request; a lost response wins over a hang when both are drawn. */
export function drawFaults(faults: Faults, op: Operation, random: () => number = Math.random): FaultDraw {
  const f = faults.operations?.[op];
  if (f === undefined) return NO_FAULT;
  const latency = f.latency_ms ? f.latency_ms.min + random() * (f.latency_ms.max - f.latency_ms.min) : 0;
  const error = random() < (f.error_rate ?? 0);
  const lose = random() < (f.lost_response_rate ?? 0);
  const hang = random() < (f.timeout_rate ?? 0);
  return {
    latency_ms: latency,
    error_status: error ? (random() < 0.5 ? 500 : 503) : null,
    after: lose ? 'lose' : hang ? 'hang' : 'answer',
    hang_ms: f.hang_ms ?? DEFAULT_HANG_MS,
  };
}
