/** JSON with object keys sorted at every level, so equal values always give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value, 0));
}

const MAX_DEPTH = 32;

function sortKeys(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new Error('canonicalJson: value nested too deeply');
  if (Array.isArray(value)) return value.map((v) => sortKeys(v, depth + 1));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort())
    out[k] = sortKeys((value as Record<string, unknown>)[k], depth + 1);
  return out;
}
