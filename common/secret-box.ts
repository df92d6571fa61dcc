// Secret values at rest: sealed with AES-256-GCM under the cluster's secrets key
// before they reach Redis, opened only by the node agent that starts the task.
// Each value is bound to its tenant and name (additional authenticated data), so
// a sealed value copied to another secret or tenant in Redis does not open.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { BerthError } from './errors.ts';

const VERSION = 'v1';
const KEY_BYTES = 32;
const IV_BYTES = 12;

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** A key from its base64 text (the key file's content). */
  static fromText(text: string, source: string): SecretBox {
    const key = Buffer.from(text.trim(), 'base64');
    if (key.length !== KEY_BYTES) {
      throw new BerthError('SECRETS_KEY_INVALID', `${source}: a secrets key is ${KEY_BYTES} bytes in base64 (\`openssl rand -base64 32\`), got ${key.length} bytes`);
    }
    return new SecretBox(key);
  }

  static generateText(): string {
    return randomBytes(KEY_BYTES).toString('base64') + '\n';
  }

  seal(plain: string, tenant: string, name: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(`${tenant}/${name}`));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join('.');
  }

  /** The value, or a SECRET_UNREADABLE error when the key or the binding is not the one it was sealed with. */
  open(sealed: string, tenant: string, name: string): string {
    const [version, iv, tag, body] = sealed.split('.');
    if (version !== VERSION || iv === undefined || tag === undefined || body === undefined) {
      throw new BerthError('SECRET_UNREADABLE', `secret ${name}: not a sealed value`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64'));
      decipher.setAAD(Buffer.from(`${tenant}/${name}`));
      decipher.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw new BerthError('SECRET_UNREADABLE', `secret ${name}: sealed with another secrets key than this node's (every API and agent needs the same BERTH_SECRETS_KEY_FILE)`);
    }
  }
}

/** Registry credentials as definitions carry them; the password is sealed at rest. */
export interface RegistryCredentials {
  username: string;
  password: string;
}

const REGISTRY_PASSWORD = 'repositoryCredentials';

/** The credentials as stored: the password sealed for the tenant. */
export function sealRegistryCredentials(box: SecretBox, tenant: string, c: RegistryCredentials): RegistryCredentials {
  return { username: c.username, password: box.seal(c.password, tenant, REGISTRY_PASSWORD) };
}

/** The credentials a pull uses: the password opened (SECRET_UNREADABLE when this key cannot). */
export function openRegistryCredentials(box: SecretBox, tenant: string, c: RegistryCredentials): RegistryCredentials {
  return { username: c.username, password: box.open(c.password, tenant, REGISTRY_PASSWORD) };
}

/**
 * The key in `file`. With `create`, a missing file is made (0600) with a new
 * key, as the API and the all-in-one do on their first start; without it a
 * missing file means no key (null).
 */
export async function loadSecretBox(file: string, { create = false } = {}): Promise<SecretBox | null> {
  try {
    return SecretBox.fromText(await readFile(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!create) return null;
  try {
    await writeFile(file, SecretBox.generateText(), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process made it first: use theirs.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return SecretBox.fromText(await readFile(file, 'utf8'), file);
}
