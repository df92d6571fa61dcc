// Opaque paging tokens: base64url JSON, checked on the way back in.
import { BerthError } from '../../common/errors.ts';

export function encodeToken(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Decodes a token, or answers 400 naming query/nextToken. */
export function decodeToken<T>(token: string, check: (v: unknown) => v is T): T {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!check(value)) throw invalidField('query/nextToken', 'is not a token this API gave out');
  return value;
}

export function invalidField(field: string, message: string): BerthError {
  return new BerthError('VALIDATION_ERROR', `${field} ${message}`, [{ field, message }]);
}
