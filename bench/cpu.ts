/**
 * CPU time by process, from /proc (Linux): what a benchmark's request costs each party on
 * this machine. Throughput here drifts with the neighbours on the host; CPU per request
 * drifts much less, and says where the time goes.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** /proc/PID/stat times are in USER_HZ ticks, 100 a second on Linux whatever the kernel's own HZ. */
const MS_PER_TICK = 10;

interface ProcStat {
  pid: number;
  ppid: number;
  cpu_ms: number;
  cmdline: string;
}

/**
 * CPU ms of all the process's threads: from /proc/PID/task/TID/schedstat (nanoseconds) where
 * the kernel keeps it, else from /proc/PID/stat, whose 10 ms ticks are too coarse for a
 * statement's cost.
 */
function cpuMs(pid: number, stat_fields: readonly string[]): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    return ns / 1e6;
  } catch {
    return (Number(stat_fields[11]) + Number(stat_fields[12])) * MS_PER_TICK;
  }
}

function readStat(pid: number): ProcStat | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command's closing parenthesis: state is the 1st, ppid the 2nd, utime and stime the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    return { pid, ppid: Number(fields[1]), cpu_ms: cpuMs(pid, fields), cmdline };
  } catch {
    return null; // gone meanwhile
  }
}

function allProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat) out.push(stat);
  }
  return out;
}

/** Which party a process belongs to, or null to leave it out. */
export type Classify = (p: ProcStat, all: ReadonlyMap<number, ProcStat>) => string | null;

/** CPU ms per party; sample before and after, and subtract with `cpuSince`. */
export function cpuSnapshot(classify: Classify): Map<string, Map<number, number>> {
  const all = new Map(allProcesses().map((p) => [p.pid, p]));
  const parties = new Map<string, Map<number, number>>();
  for (const p of all.values()) {
    const party = classify(p, all);
    if (party === null) continue;
    if (!parties.has(party)) parties.set(party, new Map());
    parties.get(party)!.set(p.pid, p.cpu_ms);
  }
  return parties;
}

/**
 * CPU ms each party spent between two snapshots. A process that started in between counts
 * from its start; one that ended in between is lost (the benchmarks keep theirs alive).
 */
export function cpuSince(
  before: Map<string, Map<number, number>>,
  after: Map<string, Map<number, number>>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [party, pids] of after) {
    let ms = 0;
    for (const [pid, cpu_ms] of pids) ms += cpu_ms - (before.get(party)?.get(pid) ?? 0);
    out[party] = ms;
  }
  return out;
}

/** Whether `pid` descends from `ancestor`. */
export function descendsFrom(pid: number, ancestor: number, all: ReadonlyMap<number, ProcStat>): boolean {
  // Bounded: a process tree on one machine is far shallower than this.
  for (let depth = 0, cur = all.get(pid); cur && depth < 64; depth += 1, cur = all.get(cur.ppid)) {
    if (cur.ppid === ancestor) return true;
  }
  return false;
}

/** A PostgreSQL backend serving `database` (its process title names the database). */
export function isBackendOf(p: ProcStat, database: string): boolean {
  return p.cmdline.startsWith('postgres: ') && p.cmdline.split(' ').includes(database);
}
