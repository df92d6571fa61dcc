// berth-runtime mounts an overlay rootfs itself from the berth.rootfs.overlay
// annotations (the agent's fast path): inside the container's mount namespace
// only, so the host's mount table never shows it and there is nothing to unmount.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { berthRuntimeForFile, leftovers, runBundle } from './fixture.ts';

const file = berthRuntimeForFile('overlay-rootfs');

describe('overlay rootfs from annotations', () => {
  it('is mounted inside the container over the layers, writes go to the upper dir, the host sees no mount', async () => {
    const b = await file.bundle({
      args: ['sh', '-c', 'cat /extra.txt && echo written > /new.txt && cat /proc/self/mountinfo'],
      memoryBytes: 64 << 20, pidsLimit: 32, cpuUnits: 256,
    });
    const top = path.join(b.scratch, 'top');
    const merged = path.join(b.scratch, 'merged');
    for (const d of [top, merged, path.join(b.scratch, 'upper'), path.join(b.scratch, 'work')]) mkdirSync(d);
    writeFileSync(path.join(top, 'extra.txt'), 'from the top layer\n');
    const rel = (p: string) => path.relative(b.scratch, p);
    b.spec.root.path = merged;
    b.spec.annotations = {
      ...b.spec.annotations,
      'berth.rootfs.overlay': `lowerdir=${rel(top)}:${path.relative(b.scratch, b.rootfs)},upperdir=upper,workdir=work`,
      'berth.rootfs.overlay-base': b.scratch,
    };
    await b.writeSpec();
    const r = await runBundle(file.rt, b);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('from the top layer');
    const rootLine = r.stdout.split('\n').find((l) => l.split(' ')[4] === '/');
    expect(rootLine).toMatch(/ - overlay overlay /);
    expect(readFileSync(path.join(b.scratch, 'upper/new.txt'), 'utf8')).toBe('written\n');
    expect(existsSync(path.join(b.rootfs, 'new.txt'))).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(merged);
    expect(leftovers(b, file.rt)).toEqual([]);
  });
});
