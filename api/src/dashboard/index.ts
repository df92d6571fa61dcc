// The dashboard: its page and files (public), the live event stream
// (GET /v1/events, behind the API key like every /v1 route), and the cluster
// gauges it adds to the API's /metrics.
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { BerthRedis } from '../../../common/redis.ts';
import type { Handlers } from '../handlers.ts';
import { eventHandlers, type EventOptions } from './events.ts';
import { installClusterMetrics } from './metrics.ts';
import { installDashboardFiles } from './static.ts';

export interface DashboardDeps {
  redis: BerthRedis;
  /** The API's /metrics registry, for the cluster gauges. */
  registry: Registry;
  events?: Omit<EventOptions, 'redis'>;
}

/** Registers the page's routes and gauges; returns the handlers of the spec's dashboard operations. */
export function installDashboard(app: FastifyInstance, deps: DashboardDeps): Handlers {
  installDashboardFiles(app);
  installClusterMetrics(deps.registry, deps.redis);
  const events = eventHandlers({ redis: deps.redis, ...deps.events });
  // Open streams would hold the server's close forever: end them first.
  app.addHook('preClose', async () => { events.close(); });
  return events.handlers;
}
