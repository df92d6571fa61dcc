// Every error a client or an operator can see, with its code and HTTP status.
// Code throws `new BerthError('TASK_NOT_FOUND', ...)`; the API maps it once.

export const ERRORS = {
  VALIDATION_ERROR: { status: 400, message: 'The request is not valid' },
  BAD_JSON: { status: 400, message: 'The request body is not valid JSON' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Send the body as application/json' },
  BODY_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  UNAUTHORIZED: { status: 401, message: 'A valid API key is required as a bearer token' },
  FORBIDDEN: { status: 403, message: 'This API key may not do that' },
  NOT_FOUND: { status: 404, message: 'No such route' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed on this route' },
  TASK_NOT_FOUND: { status: 404, message: 'No such task' },
  TASK_DEFINITION_NOT_FOUND: { status: 404, message: 'No such task definition' },
  INVALID_IMAGE_REFERENCE: { status: 400, message: 'The image reference is not valid' },
  RATE_LIMITED: { status: 429, message: 'Too many requests' },
  UNAVAILABLE: { status: 503, message: 'A backing service is unavailable' },
  INTERNAL: { status: 500, message: 'Internal error' },
  BAD_REQUEST: { status: 400, message: 'The request is malformed' },
  URI_TOO_LONG: { status: 414, message: 'A path parameter is too long' },
  TASK_DEFINITION_INACTIVE: { status: 400, message: 'The task definition is INACTIVE; register a new revision' },
  SECRET_NOT_FOUND: { status: 404, message: 'No such secret' },
  SECRET_REFERENCE_NOT_FOUND: { status: 400, message: 'A secret the task definition refers to does not exist' },
  SECRETS_KEY_MISSING: { status: 503, message: 'This API has no secrets key to seal secrets with' },
  SECRETS_KEY_INVALID: { status: 500, message: 'The secrets key is not valid' },
  SECRET_UNREADABLE: { status: 500, message: 'A secret could not be opened with this node\'s secrets key' },
  NODE_NOT_FOUND: { status: 404, message: 'No such node' },
  API_KEY_NOT_FOUND: { status: 404, message: 'No such API key' },
  IDEMPOTENCY_IN_PROGRESS: { status: 409, message: 'A request with this Idempotency-Key is still in progress' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, message: 'This Idempotency-Key was used with a different request' },
  NOT_IMPLEMENTED: { status: 501, message: 'Not implemented' },
  FUNCTION_NOT_FOUND: { status: 404, message: 'No such function' },
  INVOCATION_NOT_FOUND: { status: 404, message: 'No such invocation' },
  FUNCTION_THROTTLED: { status: 503, message: 'No function instance had a free slot in time; retry later' },
  FUNCTION_TIMEOUT: { status: 504, message: 'The function did not answer within its timeout' },
  FUNCTION_INSTANCE_FAILED: { status: 502, message: 'The function instance failed during the request' },
  FUNCTION_START_FAILED: { status: 502, message: 'No function instance could be started' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class BerthError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details?: unknown;

  constructor(code: ErrorCode, message?: string, details?: unknown) {
    super(message ?? ERRORS[code].message);
    this.name = 'BerthError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
  }

  toJSON(): { error: { code: ErrorCode; message: string; details?: unknown } } {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }
}
