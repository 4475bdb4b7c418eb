/** Two different accounts of `ids`, picked at random: a transfer's debit and credit. */
export function randomPair(ids: readonly string[]): [string, string] {
  if (ids.length < 2) throw new Error('a pair needs two accounts');
  const a = Math.floor(Math.random() * ids.length);
  // One draw among the others: no retry loop.
  const b = Math.floor(Math.random() * (ids.length - 1));
  return [ids[a]!, ids[b >= a ? b + 1 : b]!];
}
