// The API's public surface.
export { buildApi, type ApiDeps } from './app.ts';
export { ensureAdminKey } from './admin-key.ts';
export { bullTaskQueues, type TaskQueues } from './queues.ts';
export { rateLimitFromEnv, type RateLimit } from './auth.ts';
export { closeWhenAsked, forkApiWorkers, workerMetrics, type ApiWorkers } from './workers.ts';
