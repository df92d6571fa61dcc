// host-local's lease files: <dataDir>/<network>/<ip>, holding "<containerId>\r\n<ifname>".
// Read only when a crash lost the ADD result: DEL then still gets the task's
// IP as prevResult, which the firewall plugin needs to remove its rules.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { CNI_VERSION, type CniResult } from './cni.ts';

export async function leasedIps(dataDir: string, network: string, containerId: string, ifName: string): Promise<string[]> {
  const dir = path.join(dataDir, network);
  let files: string[];
  try {
    files = await readdir(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const f of files) {
    if (!/^[0-9a-f.:]+$/i.test(f) || !f.includes('.')) continue;
    const [id, iface] = (await readFile(path.join(dir, f), 'utf8').catch(() => '')).split(/\r?\n/);
    if (id?.trim() === containerId && (iface === undefined || iface.trim() === '' || iface.trim() === ifName)) out.push(f);
  }
  return out;
}

/** A minimal result standing in for a lost one: the interface and its addresses. */
export function resultFromLeases(ips: string[], prefixLength: number, ifName: string, netns: string): CniResult {
  return {
    cniVersion: CNI_VERSION,
    interfaces: [{ name: ifName, sandbox: netns }],
    ips: ips.map((ip) => ({ address: `${ip}/${prefixLength}`, interface: 0 })),
  };
}
