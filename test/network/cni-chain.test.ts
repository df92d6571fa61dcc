// Our conflist chaining against the CNI spec, with a fake plugin that logs
// what it was given: order, prevResult, runtimeConfig, environment, errors.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addList, checkList, CniError, delList, type CniConfList } from '../../node-agent/src/network/cni.ts';

let dir: string;
let log: string;

// Logs {command, env, conf} as one JSON line; on ADD answers prevResult plus one IP per plugin.
const FAKE = `#!/usr/bin/env node
const fs = require('node:fs');
const conf = JSON.parse(fs.readFileSync(0, 'utf8'));
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('CNI_')));
fs.appendFileSync(conf.log, JSON.stringify({ command: env.CNI_COMMAND, tag: conf.tag, env, conf }) + '\\n');
if (conf.failOn === env.CNI_COMMAND) {
  process.stdout.write(JSON.stringify({ cniVersion: conf.cniVersion, code: 7, msg: 'boom from ' + conf.tag, details: 'the details' }));
  process.exit(1);
}
if (env.CNI_COMMAND === 'ADD') {
  const prev = conf.prevResult || { cniVersion: conf.cniVersion, interfaces: [], ips: [] };
  const n = prev.ips.length + 2;
  process.stdout.write(JSON.stringify({ ...prev, ips: [...prev.ips, { address: '10.0.0.' + n + '/24' }] }));
}
`;

async function calls(): Promise<{ command: string; tag: string; env: Record<string, string>; conf: Record<string, unknown> }[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  await writeFile(log, '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function list(plugins: Record<string, unknown>[]): CniConfList {
  return { cniVersion: '1.0.0', name: 'chain-test', plugins: plugins.map((p) => ({ type: 'fake', log, ...p })) };
}

const rt = { containerId: 'c1', netns: '/run/netns/x', ifName: 'eth0', runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }], bandwidth: { rate: 1 } } };

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-cni-'));
  log = path.join(dir, 'calls.log');
  await writeFile(path.join(dir, 'fake'), FAKE);
  await chmod(path.join(dir, 'fake'), 0o755);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('conflist chaining', () => {
  it('ADD runs in order, passing each result on as prevResult; runtimeConfig only for declared capabilities', async () => {
    const result = await addList({ paths: ['/nonexistent', dir] }, list([{ tag: 'a' }, { tag: 'b', capabilities: { portMappings: true } }, { tag: 'c' }]), rt);
    expect(result.ips?.map((i) => i.address)).toEqual(['10.0.0.2/24', '10.0.0.3/24', '10.0.0.4/24']);
    const seen = await calls();
    expect(seen.map((c) => `${c.command}:${c.tag}`)).toEqual(['ADD:a', 'ADD:b', 'ADD:c']);
    expect(seen[0]!.conf.prevResult).toBeUndefined();
    expect((seen[1]!.conf.prevResult as { ips: unknown[] }).ips).toHaveLength(1);
    expect((seen[2]!.conf.prevResult as { ips: unknown[] }).ips).toHaveLength(2);
    // name and cniVersion come from the list; capabilities are not passed on.
    expect(seen[1]!.conf).toMatchObject({ name: 'chain-test', cniVersion: '1.0.0', runtimeConfig: { portMappings: rt.runtimeConfig.portMappings } });
    expect(seen[1]!.conf.capabilities).toBeUndefined();
    expect(seen[0]!.conf.runtimeConfig).toBeUndefined();
    expect(seen[0]!.env).toEqual({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: `/nonexistent:${dir}` });
  });

  it('DEL runs in reverse order with the cached result, calls every plugin even after a failure, then throws', async () => {
    const cached = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] };
    await expect(delList({ paths: [dir] }, list([{ tag: 'a' }, { tag: 'b', failOn: 'DEL' }, { tag: 'c' }]), rt, cached)).rejects.toThrow(/CNI DEL fake: boom from b: the details/);
    const seen = await calls();
    expect(seen.map((c) => `${c.command}:${c.tag}`)).toEqual(['DEL:c', 'DEL:b', 'DEL:a']);
    expect(seen.every((c) => JSON.stringify(c.conf.prevResult) === JSON.stringify(cached))).toBe(true);
  });

  it('a failed ADD deletes what was added (in reverse) and reports the plugin error code', async () => {
    const err = await addList({ paths: [dir] }, list([{ tag: 'a' }, { tag: 'b' }, { tag: 'c', failOn: 'ADD' }]), rt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).cniCode).toBe(7);
    const seen = await calls();
    expect(seen.map((c) => `${c.command}:${c.tag}`)).toEqual(['ADD:a', 'ADD:b', 'ADD:c', 'DEL:c', 'DEL:b', 'DEL:a']);
  });

  it('CHECK runs in order with the cached result', async () => {
    const cached = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] };
    await checkList({ paths: [dir] }, list([{ tag: 'a' }, { tag: 'b' }]), rt, cached);
    const seen = await calls();
    expect(seen.map((c) => `${c.command}:${c.tag}`)).toEqual(['CHECK:a', 'CHECK:b']);
    expect(seen[0]!.conf.prevResult).toEqual(cached);
  });

  it('says which plugin is missing and where it looked', async () => {
    await expect(addList({ paths: [dir] }, { cniVersion: '1.0.0', name: 'x', plugins: [{ type: 'nope' }] }, rt)).rejects.toThrow(`CNI plugin "nope" not found in ${dir}`);
    await expect(addList({ paths: [dir] }, { cniVersion: '1.0.0', name: 'x', plugins: [{ type: '../fake' }] }, rt)).rejects.toThrow(/not a plain name/);
  });
});
