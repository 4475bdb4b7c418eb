import pino, { type DestinationStream, type Logger } from 'pino';
import { redactCardNumbers } from './redact.ts';

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
      hooks: {
        // Runs on every finished JSON line, whatever field or message a card number hides in.
        // Masking the serialised text (not the objects) keeps it cheap: one regex pass a line.
        streamWrite: (line: string) => redactCardNumbers(line),
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
    // Default: stdout through an asynchronous buffer (4 KiB), flushed on exit, so a busy
    // server makes one write system call per few lines instead of one per line.
    destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 }),
  );
}
