// What route files produce: handlers by operationId, wired to the spec's routes in app.ts.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { operations } from './openapi-types.ts';

export type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
export type Handlers = Partial<Record<keyof operations, Handler>>;

type JsonBody<T> = T extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never;
/** The JSON body of an operation, as the spec (and so the validator) has it. */
export type Body<Op extends keyof operations> = JsonBody<operations[Op]>;
/** The query of an operation, defaults filled by the validator. */
export type Query<Op extends keyof operations> = NonNullable<operations[Op]['parameters']['query']>;
/** The path parameters of an operation. */
export type Params<Op extends keyof operations> = operations[Op]['parameters']['path'];
