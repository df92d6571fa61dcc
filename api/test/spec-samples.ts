// Valid sample values generated from api/openapi.yaml's schemas, for the tests
// that walk every route (isolation, fuzz).
import { loadSpec, type SpecOperation } from '../src/spec.ts';

type Schema = Record<string, unknown>;

const spec = loadSpec();

export function resolve(schema: Schema): Schema {
  let s = schema;
  for (let i = 0; i < 10 && typeof s.$ref === 'string'; i++) {
    const ref = s.$ref as string;
    const name = ref.slice(ref.lastIndexOf('/') + 1);
    s = (spec.components.schemas[name] ?? {}) as Schema;
  }
  if (Array.isArray(s.allOf)) {
    const parts = (s.allOf as Schema[]).map(resolve);
    return {
      type: 'object',
      properties: Object.assign({}, ...parts.map((p) => p.properties ?? {})),
      required: parts.flatMap((p) => (p.required as string[] | undefined) ?? []),
    };
  }
  return s;
}

// Strings tried, in order, until one matches a pattern.
const CANDIDATES = ['web', 'a', 'a1', 'A_1', '/app', 'web:1', 'db.pw', '0123456789abcdef', 'a'.repeat(32), '1-0', 'x'];

export function sampleString(schema: Schema): string {
  if (Array.isArray(schema.enum)) return String(schema.enum[0]);
  if (typeof schema.pattern === 'string') {
    const re = new RegExp(schema.pattern, 'u');
    const hit = CANDIDATES.find((c) => re.test(c) && c.length >= Number(schema.minLength ?? 0));
    if (hit) return hit;
    throw new Error(`no sample string for pattern ${schema.pattern}`);
  }
  return 'x'.repeat(Math.max(1, Number(schema.minLength ?? 1)));
}

/** A minimal valid value: required properties only, the smallest arrays allowed. */
export function sample(schema: Schema, overrides: Record<string, unknown> = {}, depth = 0): unknown {
  const s = resolve(schema);
  if (Array.isArray(s.oneOf)) return sample((s.oneOf as Schema[])[0]!, overrides, depth + 1);
  if (s.default !== undefined) return s.default;
  if (Array.isArray(s.enum)) return s.enum[0];
  switch (s.type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const props = (s.properties ?? {}) as Record<string, Schema>;
      for (const name of (s.required as string[] | undefined) ?? []) {
        out[name] = name in overrides ? overrides[name] : sample(props[name] ?? {}, overrides, depth + 1);
      }
      for (const [name, value] of Object.entries(overrides)) if (name in props && !(name in out) && depth === 0) out[name] = value;
      return out;
    }
    case 'array':
      return Array.from({ length: Number(s.minItems ?? 0) }, () => sample((s.items ?? {}) as Schema, overrides, depth + 1));
    case 'integer':
    case 'number':
      return Number(s.minimum ?? 1);
    case 'boolean':
      return false;
    case 'string':
      return sampleString(s);
    default:
      return 'x';
  }
}

export interface SampleRequest {
  method: SpecOperation['method'];
  url: string;
  payload?: unknown;
}

/** A valid request for an operation, path parameters and body from `values` where given. */
export function sampleRequest(op: SpecOperation, values: Record<string, string> = {}, body: Record<string, unknown> = {}, query: Record<string, string> = {}): SampleRequest {
  const params = ((op.schema.params as Schema | undefined)?.properties ?? {}) as Record<string, Schema>;
  const url = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(values[name] ?? sampleString(resolve(params[name] ?? {}))));
  const known = Object.keys(((op.schema.querystring as Schema | undefined)?.properties ?? {}) as Record<string, Schema>);
  const qs = new URLSearchParams(Object.entries(query).filter(([k]) => known.includes(k))).toString();
  const request: SampleRequest = { method: op.method, url: qs ? `${url}?${qs}` : url };
  if (op.schema.body) request.payload = sample(op.schema.body as Schema, body);
  return request;
}
