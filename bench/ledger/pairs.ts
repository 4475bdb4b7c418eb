/** Two different accounts of `ids`, picked at random: a transfer's debit and credit. */
export function randomPair(ids: readonly string[]): [string, string] {
  if (ids.length < 2) throw new Error('a pair needs two accounts');
  const pick = () => ids[Math.floor(Math.random() * ids.length)]!;
  const a = pick();
  let b = pick();
  // Bounded in practice: each draw misses `a` with probability 1 - 1/n, n ≥ 2.
  while (b === a) b = pick();
  return [a, b];
}
