// The one error handler: every error a request can meet becomes the JSON body
// { error: { code, message, details? } } with its status. 5xx details stay in the log.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BerthError, ERRORS, type ErrorCode } from '../../common/errors.ts';
import { describeValidationErrors } from './spec.ts';

/** fastify's own client errors, by code, mapped to the catalogue. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_JSON',
  FST_ERR_BAD_URL: 'BAD_REQUEST',
  FST_ERR_MAX_PARAM_LENGTH: 'URI_TOO_LONG',
  FST_ERR_ASYNC_CONSTRAINT: 'BAD_REQUEST',
};

export function toBerthError(err: FastifyError | Error): BerthError | null {
  if (err instanceof BerthError) return err;
  const fe = err as FastifyError & { validation?: unknown; validationContext?: string };
  if (Array.isArray(fe.validation)) {
    const details = describeValidationErrors(fe.validation, fe.validationContext ?? 'body');
    const first = details[0];
    return new BerthError('VALIDATION_ERROR', first ? `${first.field} ${first.message}` : ERRORS.VALIDATION_ERROR.message, details);
  }
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped === 'BAD_JSON') return new BerthError('BAD_JSON', fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'The body is empty; send JSON or no Content-Type' : undefined);
  if (mapped === 'BAD_REQUEST' && fe.code === 'FST_ERR_BAD_URL') return new BerthError('BAD_REQUEST', 'The URL is not valid (bad percent-encoding?)');
  if (mapped) return new BerthError(mapped);
  // The JSON parser's SyntaxError, and secure-json-parse's prototype-poisoning refusal.
  if (err instanceof SyntaxError || fe.statusCode === 400 && /JSON|__proto__|constructor/i.test(fe.message)) return new BerthError('BAD_JSON');
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const byStatus = (Object.keys(ERRORS) as ErrorCode[]).find((c) => ERRORS[c].status === fe.statusCode);
    return new BerthError(byStatus ?? 'BAD_REQUEST');
  }
  return null;
}

export function sendError(reply: FastifyReply, err: BerthError): FastifyReply {
  if (err.code === 'UNAUTHORIZED') reply.header('www-authenticate', 'Bearer');
  return reply.code(err.status).type('application/json; charset=utf-8').send(err.toJSON());
}

export function installErrorHandling(app: FastifyInstance, routeMatchers: () => { re: RegExp; method: string }[]): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const known = toBerthError(err);
    if (known && known.status < 500) return sendError(reply, known);
    if (known) {
      request.log.warn({ err }, known.message);
      return sendError(reply, known);
    }
    request.log.error({ err, route: request.routeOptions.url }, 'request failed');
    return sendError(reply, new BerthError('INTERNAL'));
  });

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = routeMatchers().filter((m) => m.re.test(path)).map((m) => m.method);
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      reply.header('allow', [...new Set(allowed)].join(', '));
      return sendError(reply, new BerthError('METHOD_NOT_ALLOWED', `${request.method} is not allowed here; use ${[...new Set(allowed)].join(', ')}`));
    }
    return sendError(reply, new BerthError('NOT_FOUND'));
  });
}
