// The seal on secrets at rest: what opens and what does not.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSecretBox, SecretBox } from '../../common/secret-box.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-secret-box-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('SecretBox', () => {
  const box = SecretBox.fromText(SecretBox.generateText(), 'test');

  it('opens what it sealed, for the same tenant and name only', () => {
    const sealed = box.seal('pa55 wörd', 'acme', 'db');
    expect(sealed).not.toContain('pa55');
    expect(box.open(sealed, 'acme', 'db')).toBe('pa55 wörd');
    expect(box.seal('pa55 wörd', 'acme', 'db')).not.toBe(sealed); // a fresh IV each time
    expect(() => box.open(sealed, 'acme', 'other')).toThrow('secret other: sealed with another secrets key');
    expect(() => box.open(sealed, 'evil', 'db')).toThrow(/sealed with another secrets key/);
  });

  it('refuses another key, a tampered value and something not sealed', () => {
    const sealed = box.seal('v', 't', 'n');
    const other = SecretBox.fromText(SecretBox.generateText(), 'other');
    expect(() => other.open(sealed, 't', 'n')).toThrow(/another secrets key/);
    const parts = sealed.split('.');
    const flipped = Buffer.from(parts[3]!, 'base64');
    flipped[0] = flipped[0]! ^ 1;
    expect(() => box.open([parts[0], parts[1], parts[2], flipped.toString('base64')].join('.'), 't', 'n')).toThrow(/another secrets key/);
    expect(() => box.open('plain text', 't', 'n')).toThrow('secret n: not a sealed value');
  });

  it('makes a key file once (0600) and reads the same key afterwards; a short key is refused naming the file', async () => {
    const file = path.join(dir, 'secrets.key');
    expect(await loadSecretBox(file)).toBeNull();
    const made = await loadSecretBox(file, { create: true });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(file, 'utf8');
    const again = await loadSecretBox(file, { create: true });
    expect(await readFile(file, 'utf8')).toBe(text);
    expect(again!.open(made!.seal('x', 't', 'n'), 't', 'n')).toBe('x');

    const short = path.join(dir, 'short.key');
    await writeFile(short, Buffer.alloc(16).toString('base64'));
    await expect(loadSecretBox(short)).rejects.toThrow(`${short}: a secrets key is 32 bytes in base64`);
  });
});
