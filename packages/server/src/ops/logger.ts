import pino, { type DestinationStream, type Logger } from 'pino';
import { redactCardNumbers, redactDeep } from './redact.ts';

export type { Logger } from 'pino';

/** Fields that carry credentials anywhere in a log object. pino replaces them before serialising. */
const SECRET_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["stripe-signature"]',
  'headers.authorization',
  'authorization',
  'password',
  'secret',
  'secret_key',
  'publishable_key',
  'api_key',
  '*.password',
  '*.secret',
  '*.secret_key',
  '*.publishable_key',
  '*.api_key',
  'card.number',
  'card.cvc',
  '*.card.number',
  '*.card.cvc',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'moneta', pid: process.pid },
      redact: { paths: SECRET_PATHS, censor: '[REDACTED]' },
      formatters: {
        // Runs on every line's merged fields; card numbers are masked whatever the field name.
        log: (object) => redactDeep(object) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          const masked = args.map((a) => (typeof a === 'string' ? redactCardNumbers(a) : a));
          return method.apply(this, masked as Parameters<typeof method>);
        },
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: {
        err: pino.stdSerializers.err,
        req: (req: { method?: string; url?: string; ip?: string }) => ({
          method: req.method,
          url: req.url,
          ip: req.ip,
        }),
        res: (res: { statusCode?: number }) => ({ status_code: res.statusCode }),
      },
    },
    destination,
  );
}
