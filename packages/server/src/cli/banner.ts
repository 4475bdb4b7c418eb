import type { RunningMoneta } from '../service.ts';

/** What a newcomer sees after `npm start`: where Moneta runs and, on first start, keys and a curl to try. */
export function startBanner(moneta: RunningMoneta, took_ms: number): string {
  const lines = [
    '',
    `Moneta is running at ${moneta.url} (role ${moneta.config.role}, ready in ${took_ms} ms)`,
    moneta.db.embedded
      ? `Database: embedded PostgreSQL, data in ${moneta.config.data_dir}`
      : 'Database: DATABASE_URL',
    `Health: ${moneta.url}/readyz   Metrics: ${moneta.url}/metrics`,
    moneta.acquirers.length > 0
      ? `Acquirers: ${moneta.acquirers.map((a) => `${a.name} ${a.url}`).join(', ')}`
      : 'Acquirers: none (set MONETA_ACQUIRERS to take payments)',
  ];
  if (moneta.demo) {
    const { merchant, test } = moneta.demo;
    lines.push(
      '',
      `Demo merchant ${merchant.id} created. Its test keys are shown only now:`,
      `  secret key:      ${test.secret_key}`,
      `  publishable key: ${test.publishable_key}`,
      '',
      'Try it:',
      `  curl ${moneta.url}/v1/customers -u ${test.secret_key}: -d email=jenny@example.com -d "metadata[order]=42"`,
      `  curl ${moneta.url}/v1/payment_intents -u ${test.secret_key}: -d amount=2000 -d currency=usd -d payment_method=pm_card_visa -d confirm=true`,
    );
  }
  lines.push('', 'Stop with Ctrl-C (graceful shutdown).', '');
  return lines.join('\n');
}
