// Network bytes of a task, from /proc/<pid>/net/dev of a process inside it:
// that file shows the interfaces of the process's network namespace. Node
// cannot setns(2), and /sys/class/net shows only the agent's own namespace, so
// a process in the namespace is the cheap way in (one small file per tick).
import { readFile } from 'node:fs/promises';

export interface NetBytes {
  rxBytes: number;
  txBytes: number;
}

/** Sums every interface but `lo`. */
export function parseNetDev(text: string): NetBytes {
  let rxBytes = 0;
  let txBytes = 0;
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === 'lo') continue;
    const fields = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    rxBytes += fields[0] ?? 0;
    txBytes += fields[8] ?? 0;
  }
  return { rxBytes, txBytes };
}

/** undefined when the process is gone. */
export async function readNetDev(pid: number): Promise<NetBytes | undefined> {
  try {
    return parseNetDev(await readFile(`/proc/${pid}/net/dev`, 'utf8'));
  } catch {
    return undefined;
  }
}
