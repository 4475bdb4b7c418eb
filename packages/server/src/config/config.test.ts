import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './index.ts';

describe('configuration', () => {
  it('has working defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(4000);
    expect(c.role).toBe('all');
    expect(c.database_url).toBeUndefined();
    expect(c.data_dir).toBe(path.resolve('./data'));
  });

  it('stops on a bad value, naming the variable and what is allowed', () => {
    expect(() => loadConfig({ PORT: 'abc' })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: 'abc' })).toThrow(
      /PORT="abc" is not valid: allowed is an integer from 0 to 65535/,
    );
    expect(() => loadConfig({ MONETA_ROLE: 'boss' })).toThrow(/MONETA_ROLE.*all, api or worker/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL/);
    expect(() => loadConfig({ MONETA_IDEMPOTENCY_RETENTION_HOURS: '1' })).toThrow(/at least 24 hours/);
  });

  it('reads a JSON config file, and the environment wins over it', () => {
    const file = path.join(os.tmpdir(), `moneta-config-${process.pid}.json`);
    writeFileSync(file, JSON.stringify({ PORT: 5001, LOG_LEVEL: 'debug' }));
    const c = loadConfig({ MONETA_CONFIG: file, LOG_LEVEL: 'warn' });
    expect(c.port).toBe(5001);
    expect(c.log_level).toBe('warn');
  });

  it('rejects unknown settings in the config file', () => {
    const file = path.join(os.tmpdir(), `moneta-config-bad-${process.pid}.json`);
    writeFileSync(file, JSON.stringify({ PROT: 1 }));
    expect(() => loadConfig({ MONETA_CONFIG: file })).toThrow(/unknown setting PROT/);
  });
});
