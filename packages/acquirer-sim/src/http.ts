/**
 * The HTTP front: routing, authentication, body reading and fault injection around the
 * Simulator. Plain node:http rather than a framework because fault injection needs the raw
 * socket (drop it after processing, or hold the answer back) and replays need exact bytes.
 *
 * Order for a /v1 request: route → outage (503, not processed) → auth (401) → body (413/400) →
 * latency → injected error (500/503, not processed) → processing → lost response (socket
 * destroyed after the journal has it) or hang (answer after hang_ms) → answer.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError } from './errors.ts';
import { drawFaults, inOutage, parseFaults } from './faults.ts';
import { CLOSE_GRACE_MS, MAX_BODY_BYTES } from './limits.ts';
import type { Reply, Simulator } from './simulator.ts';
import type { Faults, Operation } from './types.ts';
import {
  authorizeInput,
  captureInput,
  idempotencyKey,
  refundInput,
  reportDate,
  voidInput,
} from './validate.ts';

interface Context {
  req: IncomingMessage;
  params: string[];
  body: unknown;
}

type Handler = (ctx: Context) => Promise<Reply>;

type Route =
  | { scope: 'health' }
  | { scope: 'v1'; op: Operation; body: boolean; run: Handler }
  | { scope: 'admin'; body: boolean; run: Handler };

export interface FrontOptions {
  sim: Simulator;
  /** null: no authentication. */
  api_key: string | null;
  faults: Faults;
  now: () => number;
  log: (line: string) => void;
}

const JSON_TYPE = 'application/json; charset=utf-8';

export class HttpFront {
  readonly server: http.Server;
  private faults: Faults;
  private readonly keyDigest: Buffer | null;
  private readonly shutdown = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private closing = false;

  constructor(private readonly opts: FrontOptions) {
    this.faults = opts.faults;
    this.keyDigest = opts.api_key === null ? null : sha256(opts.api_key);
    this.server = http.createServer((req, res) => {
      const done = this.handle(req, res);
      this.inFlight.add(done);
      void done.finally(() => this.inFlight.delete(done));
    });
  }

  setFaults(faults: Faults): void {
    this.faults = parseFaults(faults);
  }

  getFaults(): Faults {
    return this.faults;
  }

  /** Stops accepting, cuts held answers and delays, lets processing finish, then drops connections. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.shutdown.abort();
    this.server.closeIdleConnections();
    await Promise.race([Promise.allSettled([...this.inFlight]), sleep(CLOSE_GRACE_MS)]);
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://acquirer.invalid');
      const route = matchRoute(req.method ?? 'GET', url.pathname, this);
      if (route.scope === 'health') return this.send(res, { status: 200, body: '{"ok":true}' });
      if (route.scope === 'v1' && inOutage(this.faults, this.opts.now())) {
        throw new ApiError(503, 'acquirer_unavailable', 'The acquirer is unavailable (simulated outage).');
      }
      this.authenticate(req);
      const ctx: Context = {
        req,
        params: routeParams(url.pathname),
        body: route.body ? await readJson(req) : undefined,
      };
      if (route.scope === 'admin') return this.send(res, await route.run(ctx));
      await this.handleV1(route.op, route.run, ctx, res);
    } catch (err) {
      this.send(res, this.errorReply(err));
    }
  }

  private async handleV1(op: Operation, run: Handler, ctx: Context, res: ServerResponse): Promise<void> {
    const draw = drawFaults(this.faults, op);
    const untrack = this.opts.sim.track(referenceOf(ctx.body));
    let reply: Reply;
    try {
      if (draw.latency_ms > 0) await this.delay(draw.latency_ms);
      if (draw.error_status !== null) {
        return this.send(
          res,
          new ApiError(draw.error_status, 'simulated_error', 'Injected fault: not processed.'),
        );
      }
      reply = await run(ctx).catch((err: unknown) => this.errorReply(err));
    } finally {
      untrack();
    }
    if (draw.after === 'lose') {
      // Processed and journaled (run() waited for the fsync); the caller never hears of it.
      ctx.req.socket.destroy();
      return;
    }
    if (draw.after === 'hang') {
      try {
        await this.delay(draw.hang_ms);
      } catch {
        ctx.req.socket.destroy();
        return;
      }
    }
    this.send(res, reply);
  }

  /** An injected delay; shutting down cuts it short (the request is then answered 503). */
  private async delay(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.shutdown.signal });
    } catch {
      throw new ApiError(503, 'shutting_down', 'The acquirer is shutting down.');
    }
  }

  private authenticate(req: IncomingMessage): void {
    if (this.keyDigest === null) return;
    const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (match?.[1] !== undefined && timingSafeEqual(sha256(match[1]), this.keyDigest)) return;
    throw new ApiError(401, 'unauthorized', 'Send the API key as Authorization: Bearer <key>.');
  }

  private errorReply(err: unknown): Reply {
    if (err instanceof ApiError) return { status: err.status, body: err.body() };
    // A bug, not the client's fault; the message names no request data.
    this.opts.log(`internal error: ${(err as Error)?.stack ?? String(err)}`);
    return { status: 500, body: new ApiError(500, 'internal_error', 'Internal error.').body() };
  }

  private send(res: ServerResponse, reply: Reply | ApiError): void {
    const r = reply instanceof ApiError ? { status: reply.status, body: reply.body() } : reply;
    if (res.headersSent || res.destroyed) return;
    const headers: http.OutgoingHttpHeaders = {
      'content-type': r.content_type ?? JSON_TYPE,
      'content-length': Buffer.byteLength(r.body),
    };
    if (r.replayed) headers['idempotent-replayed'] = 'true';
    // After a 413 the unread rest of the body is still on the wire: the connection cannot be reused.
    if (this.closing || r.status === 413) headers.connection = 'close';
    res.writeHead(r.status, headers);
    res.end(r.body);
  }

  // Handlers -----------------------------------------------------------------------------------

  authorize: Handler = ({ req, body }) => this.opts.sim.authorize(keyOf(req), authorizeInput(body));
  capture: Handler = ({ req, params, body }) =>
    this.opts.sim.capture(keyOf(req), idOf(params), captureInput(body));
  void: Handler = ({ req, params, body }) => this.opts.sim.void(keyOf(req), idOf(params), voidInput(body));
  refund: Handler = ({ req, params, body }) =>
    this.opts.sim.refund(keyOf(req), idOf(params), refundInput(body));
  transaction: Handler = ({ params }) => this.opts.sim.transaction(idOf(params));
  inquire: Handler = ({ params }) => this.opts.sim.inquire(params[2] ?? '');
  report: Handler = ({ params }) => this.opts.sim.report(reportDate(params[2] ?? ''));
  records: Handler = () => this.opts.sim.durableRecords();
  readFaults: Handler = async () => ({ status: 200, body: JSON.stringify(this.faults) });
  putFaults: Handler = async ({ body }) => {
    this.faults = parseFaults(body);
    this.opts.log(`faults set: ${JSON.stringify(this.faults)}`);
    return this.readFaults({} as Context);
  };
  clearFaults: Handler = async () => {
    this.faults = {};
    this.opts.log('faults cleared');
    return this.readFaults({} as Context);
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Path segments, percent-decoded (a reference may hold any printable character). */
function routeParams(pathname: string): string[] {
  return pathname
    .split('/')
    .slice(1)
    .map((segment) => {
      try {
        return decodeURIComponent(segment);
      } catch {
        throw new ApiError(400, 'invalid_path', 'The path is not valid percent-encoding.');
      }
    });
}

function matchRoute(method: string, pathname: string, h: HttpFront): Route {
  const p = routeParams(pathname);
  const [root, resource, id, action] = p;
  const n = p.length;
  const candidates: Array<[string, Route]> = [];
  if (n === 1 && root === 'healthz') candidates.push(['GET', { scope: 'health' }]);
  if (root === 'v1' && resource === 'authorizations') {
    if (n === 2) candidates.push(['POST', v1('authorize', true, h.authorize)]);
    if (n === 3 && id) candidates.push(['GET', v1('inquire', false, h.transaction)]);
    if (n === 4 && id && action === 'capture') candidates.push(['POST', v1('capture', true, h.capture)]);
    if (n === 4 && id && action === 'void') candidates.push(['POST', v1('void', true, h.void)]);
    if (n === 4 && id && action === 'refunds') candidates.push(['POST', v1('refund', true, h.refund)]);
  }
  if (root === 'v1' && resource === 'inquiries' && n === 3 && id) {
    candidates.push(['GET', v1('inquire', false, h.inquire)]);
  }
  if (root === 'v1' && resource === 'settlement-reports' && n === 3 && id) {
    candidates.push(['GET', v1('report', false, h.report)]);
  }
  if (root === 'admin' && resource === 'faults' && n === 2) {
    candidates.push(['GET', admin(false, h.readFaults)], ['PUT', admin(true, h.putFaults)]);
    candidates.push(['DELETE', admin(false, h.clearFaults)]);
  }
  if (root === 'admin' && resource === 'records' && n === 2)
    candidates.push(['GET', admin(false, h.records)]);

  if (candidates.length === 0) throw new ApiError(404, 'not_found', 'No such endpoint.');
  const found = candidates.find(([m]) => m === method || (m === 'GET' && method === 'HEAD'));
  if (found === undefined) {
    throw new ApiError(405, 'method_not_allowed', `Use ${candidates.map(([m]) => m).join(' or ')}.`);
  }
  return found[1];
}

function v1(op: Operation, body: boolean, run: Handler): Route {
  return { scope: 'v1', op, body, run };
}

function admin(body: boolean, run: Handler): Route {
  return { scope: 'admin', body, run };
}

function keyOf(req: IncomingMessage): string {
  return idempotencyKey(req.headers['idempotency-key']);
}

function idOf(params: string[]): string {
  return params[2] ?? '';
}

/** The reference a write carries, if its body has one (used only to hold inquiries back). */
function referenceOf(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  const reference = (body as { reference?: unknown }).reference;
  return typeof reference === 'string' ? reference : null;
}

/** Reads at most MAX_BODY_BYTES; an empty body is `{}`. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw bodyTooLarge();
  const raw = await readBounded(req);
  if (raw.length === 0) return {};
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ApiError(400, 'invalid_json', 'The body is not valid JSON.');
  }
}

function bodyTooLarge(): ApiError {
  return new ApiError(413, 'body_too_large', `Request bodies are limited to ${MAX_BODY_BYTES} bytes.`);
}

function readBounded(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        cleanup();
        req.pause();
        reject(bodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(new Error('client closed the connection before the body ended'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
