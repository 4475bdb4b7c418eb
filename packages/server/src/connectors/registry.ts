import { assert } from '../lib/errors.ts';
import type { Connector } from './types.ts';

/** The acquirers this process can reach, by name; a merchant names one (routing comes later). */
export class Connectors {
  private readonly byName = new Map<string, Connector>();

  constructor(connectors: readonly Connector[]) {
    for (const c of connectors) {
      assert(!this.byName.has(c.name), `one connector per acquirer name (${c.name})`);
      this.byName.set(c.name, c);
    }
  }

  get(name: string): Connector | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.byName.values()].map((c) => c.close()));
  }
}
