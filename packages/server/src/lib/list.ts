import type { Queryable } from '../db/pool.ts';
import { assert, invalidRequest } from './errors.ts';

/** Stripe's list parameters: limit 1–100 (default 10), cursors are object ids, not both. */
export interface ListParams {
  limit: number;
  starting_after?: string | undefined;
  ending_before?: string | undefined;
}

export interface CreatedFilter {
  gt?: number;
  gte?: number;
  lt?: number;
  lte?: number;
}

export interface Page<T> {
  has_more: boolean;
  data: T[];
}

export const MAX_LIST_LIMIT = 100;

/** A WHERE clause under construction; values are always bound parameters, never spliced. */
export class Where {
  readonly clauses: string[] = [];
  readonly values: unknown[] = [];

  add(sqlWithPlaceholder: (p: string) => string, value: unknown): this {
    this.values.push(value);
    this.clauses.push(sqlWithPlaceholder(`$${this.values.length}`));
    return this;
  }

  raw(sql: string): this {
    this.clauses.push(sql);
    return this;
  }

  /**
   * `created` is whole unix seconds while the column has sub-second precision, so each
   * bound is turned into a half-open range on whole seconds: lte X means before X+1.
   */
  created(column: string, filter: CreatedFilter | number | undefined): this {
    if (filter === undefined) return this;
    const bounds = typeof filter === 'number' ? { gte: filter, lte: filter } : filter;
    if (bounds.gt !== undefined) this.add((p) => `${column} >= to_timestamp(${p})`, bounds.gt + 1);
    if (bounds.gte !== undefined) this.add((p) => `${column} >= to_timestamp(${p})`, bounds.gte);
    if (bounds.lt !== undefined) this.add((p) => `${column} < to_timestamp(${p})`, bounds.lt);
    if (bounds.lte !== undefined) this.add((p) => `${column} < to_timestamp(${p})`, bounds.lte + 1);
    return this;
  }

  sql(): string {
    return this.clauses.length ? this.clauses.join(' AND ') : 'true';
  }
}

/**
 * Newest-first keyset pagination on a time-sortable text id. `starting_after` walks to
 * older objects, `ending_before` to newer ones; one extra row tells whether there is more.
 * The cursor must be an object the caller may see (checked by `cursorExists`).
 */
export async function listPage<T>(
  db: Queryable,
  opts: {
    table: string;
    columns: string;
    where: Where;
    params: ListParams;
    cursorExists: (id: string) => Promise<boolean>;
    map: (row: Record<string, unknown>) => T;
  },
): Promise<Page<T>> {
  const { params, where } = opts;
  assert(params.limit >= 1 && params.limit <= MAX_LIST_LIMIT, 'list limit was validated');
  if (params.starting_after !== undefined && params.ending_before !== undefined) {
    throw invalidRequest(
      'You may only specify one of these parameters: starting_after, ending_before.',
      'ending_before',
    );
  }
  const cursor = params.starting_after ?? params.ending_before;
  const cursorParam = params.starting_after !== undefined ? 'starting_after' : 'ending_before';
  if (cursor !== undefined && !(await opts.cursorExists(cursor))) {
    throw invalidRequest(`No such object: '${cursor}'`, cursorParam, 'resource_missing');
  }
  const backwards = params.ending_before !== undefined;
  if (cursor !== undefined) where.add((p) => `id ${backwards ? '>' : '<'} ${p}`, cursor);
  where.values.push(params.limit + 1);
  const sql = `SELECT ${opts.columns} FROM ${opts.table} WHERE ${where.sql()}
    ORDER BY id ${backwards ? 'ASC' : 'DESC'} LIMIT $${where.values.length}`;
  const { rows } = await db.query(sql, where.values);
  const has_more = rows.length > params.limit;
  const page = rows.slice(0, params.limit);
  if (backwards) page.reverse();
  return { has_more, data: page.map(opts.map) };
}
