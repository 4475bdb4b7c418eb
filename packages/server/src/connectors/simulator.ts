import { Pool, errors as undiciErrors } from 'undici';
import { assert } from '../lib/errors.ts';
import {
  type AcquirerRefund,
  type AcquirerTransaction,
  type AuthorizeRequest,
  type Connector,
  ConnectorError,
  type Inquiry,
} from './types.ts';

export interface SimulatorConnectorOptions {
  name: string;
  url: string;
  api_key: string;
  /** Longest wait for an answer; past it the outcome is unknown. */
  timeout_ms: number;
  /** Keep-alive connections to the acquirer. */
  connections: number;
}

/** Errors that mean the request never reached the acquirer, so nothing happened there. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
/** Bound on a response body we read (a settlement report is the largest). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * The acquirer simulator's HTTP API (packages/acquirer-sim) through a keep-alive undici pool
 * with an explicit timeout per call. Every write carries our reference as its
 * Idempotency-Key, so retrying it is safe.
 */
export class SimulatorConnector implements Connector {
  readonly name: string;
  private readonly pool: Pool;

  constructor(private readonly opts: SimulatorConnectorOptions) {
    assert(opts.timeout_ms > 0 && opts.connections > 0, 'connector limits are positive');
    this.name = opts.name;
    this.pool = new Pool(opts.url, {
      connections: opts.connections,
      headersTimeout: opts.timeout_ms,
      bodyTimeout: opts.timeout_ms,
      keepAliveTimeout: 30_000,
    });
  }

  authorize(req: AuthorizeRequest): Promise<AcquirerTransaction> {
    return this.post('/v1/authorizations', req.reference, {
      reference: req.reference,
      amount: req.amount,
      currency: req.currency,
      card: req.card,
      statement_descriptor: req.statement_descriptor,
      ...(req.capture ? { capture: true } : {}),
    }) as Promise<AcquirerTransaction>;
  }

  capture(id: string, req: { reference: string; amount: number }): Promise<AcquirerTransaction> {
    return this.post(
      `/v1/authorizations/${encodeURIComponent(id)}/capture`,
      req.reference,
      req,
    ) as Promise<AcquirerTransaction>;
  }

  void(id: string, req: { reference: string }): Promise<AcquirerTransaction> {
    return this.post(
      `/v1/authorizations/${encodeURIComponent(id)}/void`,
      req.reference,
      req,
    ) as Promise<AcquirerTransaction>;
  }

  refund(id: string, req: { reference: string; amount: number }): Promise<AcquirerRefund> {
    return this.post(
      `/v1/authorizations/${encodeURIComponent(id)}/refunds`,
      req.reference,
      req,
    ) as Promise<AcquirerRefund>;
  }

  async inquire(reference: string): Promise<Inquiry | null> {
    const { status, body } = await this.request(
      'GET',
      `/v1/inquiries/${encodeURIComponent(reference)}`,
      null,
      null,
    );
    if (status === 404) return null;
    return this.answer(status, body) as Inquiry;
  }

  async settlementReport(date: string): Promise<string> {
    assert(/^\d{4}-\d{2}-\d{2}$/.test(date), 'a report date is YYYY-MM-DD');
    const { status, body } = await this.request('GET', `/v1/settlement-reports/${date}`, null, null);
    if (status !== 200) throw new ConnectorError('failed', this.name, `settlement report answered ${status}`);
    return body;
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  private async post(path: string, key: string, body: unknown): Promise<unknown> {
    const { status, body: text } = await this.request('POST', path, key, JSON.stringify(body));
    return this.answer(status, text);
  }

  /**
   * 2xx → the parsed body; 4xx → failed (the acquirer refused it); 5xx → unknown. A 409 is
   * the exception among 4xx: it says an operation with this reference or key exists already,
   * so something did happen, and only an inquiry may tell what.
   */
  private answer(status: number, text: string): unknown {
    if (status >= 200 && status < 300) return JSON.parse(text);
    const code = (safeJson(text) as { error?: { code?: string } } | null)?.error?.code ?? null;
    if (status === 409) throw new ConnectorError('unknown', this.name, `conflict ${code ?? ''}`.trim(), code);
    if (status >= 400 && status < 500) {
      throw new ConnectorError('failed', this.name, `refused with ${status} ${code ?? ''}`.trim(), code);
    }
    // A 5xx may come after the acquirer carried the request out; only an inquiry can tell.
    throw new ConnectorError('unknown', this.name, `answered ${status}`, code);
  }

  private async request(
    method: 'GET' | 'POST',
    path: string,
    key: string | null,
    body: string | null,
  ): Promise<{ status: number; body: string }> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.opts.api_key}` };
    if (body !== null) headers['content-type'] = 'application/json';
    if (key !== null) headers['idempotency-key'] = key;
    try {
      const res = await this.pool.request({
        method,
        path,
        headers,
        body,
        signal: AbortSignal.timeout(this.opts.timeout_ms),
      });
      const text = await readBounded(res.body);
      return { status: res.statusCode, body: text };
    } catch (err) {
      throw this.transportError(err);
    }
  }

  private transportError(err: unknown): ConnectorError {
    if (err instanceof ConnectorError) return err;
    const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code ?? '';
    if (NOT_SENT.has(code)) return new ConnectorError('failed', this.name, `unreachable (${code})`, code);
    const what =
      err instanceof undiciErrors.HeadersTimeoutError || (err as Error).name === 'TimeoutError'
        ? 'timed out'
        : `connection failed (${code || (err as Error).message})`;
    return new ConnectorError('unknown', this.name, what, code || null);
  }
}

async function readBounded(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) throw new Error('acquirer response too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
