// api/openapi.yaml at run time: the document itself, its operations as fastify
// routes, and the validators fastify uses for them. The spec drives validation;
// no schema is written twice.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { FastifySchema } from 'fastify';
import { parse } from 'yaml';

// ajv-formats is CommonJS; its default export arrives as the module object under some loaders.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule);

const SPEC_PATH = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'openapi.yaml');
const SCHEMA_BASE = 'https://berth.invalid/schemas/';
/** Marks a body the spec does not require: no body at all is then valid. */
const OPTIONAL_BODY = 'berth: optional body';

type Json = Record<string, unknown>;

export interface OpenApiDocument extends Json {
  paths: Record<string, Record<string, Json>>;
  components: { schemas: Record<string, Json>; parameters: Record<string, Json>; [k: string]: unknown };
}

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

/** One operation of the spec, ready to become a fastify route. */
export interface SpecOperation {
  operationId: string;
  method: Uppercase<(typeof HTTP_METHODS)[number]>;
  /** The spec's path, `/v1/tasks/{taskId}`. */
  path: string;
  /** The same for fastify, `/v1/tasks/:taskId`. */
  url: string;
  /** No API key needed (`security: []`). */
  public: boolean;
  /** Admin keys only (`x-berth-admin: true`). */
  admin: boolean;
  /** Answers with a stream that stays open (`text/event-stream`). */
  streaming: boolean;
  schema: FastifySchema;
}

let cached: OpenApiDocument | undefined;

export function loadSpec(): OpenApiDocument {
  cached ??= parse(readFileSync(SPEC_PATH, 'utf8')) as OpenApiDocument;
  return cached;
}

/** `#/components/schemas/X` -> an absolute id the validators know. */
function rewriteRefs<T>(value: T): T {
  if (Array.isArray(value)) return value.map(rewriteRefs) as T;
  if (value && typeof value === 'object') {
    const out: Json = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')
        ? SCHEMA_BASE + v.slice('#/components/schemas/'.length)
        : rewriteRefs(v);
    }
    return out as T;
  }
  return value;
}

function resolveParameter(doc: OpenApiDocument, p: Json): Json {
  const ref = p.$ref;
  if (typeof ref === 'string') {
    const name = ref.replace('#/components/parameters/', '');
    const target = doc.components.parameters[name];
    if (!target) throw new Error(`openapi.yaml: unknown parameter ${ref}`);
    return target;
  }
  return p;
}

function partSchema(params: Json[], where: string, extraAllowed: boolean): Json | undefined {
  const mine = params.filter((p) => p.in === where);
  if (mine.length === 0) return extraAllowed ? undefined : { type: 'object', additionalProperties: false };
  const properties: Json = {};
  const required: string[] = [];
  for (const p of mine) {
    const name = where === 'header' ? String(p.name).toLowerCase() : String(p.name);
    properties[name] = rewriteRefs(p.schema ?? {});
    if (p.required) required.push(name);
  }
  return { type: 'object', properties, required, additionalProperties: extraAllowed };
}

/** Every operation of the spec, in document order. */
export function specOperations(doc: OpenApiDocument = loadSpec()): SpecOperation[] {
  const globalSecurity = doc.security as unknown[] | undefined;
  const ops: SpecOperation[] = [];
  for (const [p, item] of Object.entries(doc.paths)) {
    const shared = ((item.parameters as Json[] | undefined) ?? []).map((x) => resolveParameter(doc, x));
    for (const method of HTTP_METHODS) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const own = ((op.parameters as Json[] | undefined) ?? []).map((x) => resolveParameter(doc, x));
      const params = [...shared.filter((s) => !own.some((o) => o.name === s.name && o.in === s.in)), ...own];
      const schema: FastifySchema = {};
      const pathSchema = partSchema(params, 'path', false);
      if (pathSchema && params.some((x) => x.in === 'path')) schema.params = pathSchema;
      // Unknown query parameters are refused, so a typo never silently means "no filter".
      schema.querystring = partSchema(params, 'query', false);
      const headers = partSchema(params, 'header', true);
      if (headers) schema.headers = headers;
      const requestBody = op.requestBody as Json | undefined;
      const bodySchema = (requestBody?.content as Record<string, Json> | undefined)?.['application/json']?.schema;
      if (bodySchema) {
        schema.body = requestBody?.required === true ? rewriteRefs(bodySchema) : { ...rewriteRefs(bodySchema as Json), $comment: OPTIONAL_BODY };
      }
      const security = (op.security as unknown[] | undefined) ?? globalSecurity ?? [];
      ops.push({
        operationId: String(op.operationId),
        method: method.toUpperCase() as SpecOperation['method'],
        path: p,
        url: p.replace(/\{([^}]+)\}/g, ':$1'),
        public: security.length === 0,
        admin: op['x-berth-admin'] === true,
        streaming: Object.values((op.responses as Record<string, Json> | undefined) ?? {})
          .some((r) => Object.keys((r.content as Json | undefined) ?? {}).includes('text/event-stream')),
        schema,
      });
    }
  }
  return ops;
}

export type HttpPart = 'body' | 'querystring' | 'params' | 'headers';

/**
 * The validators: JSON Schema 2020-12 as OpenAPI 3.1 has it. Bodies are taken
 * as sent (a number as a string is refused); query strings, path parameters
 * and headers are text, so those are coerced to the declared types.
 */
export function createValidators(doc: OpenApiDocument = loadSpec()) {
  const make = (coerce: boolean) => {
    const ajv = new Ajv2020({
      allErrors: false,
      coerceTypes: coerce,
      useDefaults: true,
      removeAdditional: false,
      strict: true,
      strictTypes: false,
      strictTuples: false,
      strictRequired: false,
      allowUnionTypes: true,
    });
    addFormats(ajv);
    ajv.addKeyword('example');
    for (const [name, schema] of Object.entries(doc.components.schemas)) {
      ajv.addSchema({ ...rewriteRefs(schema), $id: SCHEMA_BASE + name });
    }
    return ajv;
  };
  const strict = make(false);
  const coercing = make(true);
  return {
    compile(schema: object, httpPart: HttpPart | string | undefined): ValidateFunction {
      const validate = (httpPart === 'body' ? strict : coercing).compile(schema);
      if ((schema as Json).$comment !== OPTIONAL_BODY) return validate;
      const optional = ((data: unknown) => {
        if (data === undefined || data === null) {
          optional.errors = null;
          return true;
        }
        const ok = validate(data);
        optional.errors = validate.errors;
        return ok;
      }) as ValidateFunction;
      return optional;
    },
  };
}

export interface FieldError {
  field: string;
  message: string;
}

const PART_NAMES: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'header' };

/** ajv's errors as `{ field, message }`, the field named like `body/overrides/memory`. */
export function describeValidationErrors(errors: ErrorObject[], part: string): FieldError[] {
  const prefix = PART_NAMES[part] ?? part;
  return errors.map((e) => {
    const at = `${prefix}${e.instancePath}`;
    const params = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case 'required':
        return { field: `${at}/${String(params.missingProperty)}`, message: 'is required' };
      case 'additionalProperties':
        return { field: `${at}/${String(params.additionalProperty)}`, message: 'is not allowed' };
      case 'enum':
        return { field: at, message: `must be one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}` };
      default:
        return { field: at, message: e.message ?? 'is not valid' };
    }
  });
}
