// The agent's proxy into function instances: `ANY /v1/proxy/<taskId>/<path>`
// forwards the request, streaming both ways, to the instance's IP and port on
// this node's bridge. Only instances running on this node are reachable, and
// only with the cluster's agent token (`x-berth-agent-token`, kept in Redis at
// berth:agent-token: whoever can read Redis runs the cluster anyway), so a
// local user cannot use the agent to reach containers.
// Each answer carries what Lambda's REPORT line has: X-Berth-Duration-Ms (until
// the instance's response headers), X-Berth-Max-Memory-Used-MiB (the
// instance's peak memory so far, from its cgroup, read at most every 100 ms).
// The same instances are offered to a gateway in this process (`local`, see
// LocalNode in common/functions.ts), which then adds those headers itself.
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Dispatcher } from 'undici';
import { asInstance, PROXY_HEADERS, type LocalNode } from '../../common/functions.ts';
import type { Logger } from '../../common/log.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { AnswerBody, answerHeaders, forwardedHeaders, NOT_FORWARDED, upstreamAgent } from '../../common/upstream.ts';
import { getTask } from '../../common/tasks.ts';
import { CgroupReader } from './stats/cgroup.ts';

export interface ProxyTarget {
  ip: string;
  port: number;
  cgroupsPath: string;
}

/** Instances on this node, by task id; filled at readiness, or from Redis after an agent restart. */
export class ProxyTargets {
  private readonly map = new Map<string, ProxyTarget>();

  constructor(private readonly redis: BerthRedis, private readonly nodeId: string) {}

  set(taskId: string, target: ProxyTarget): void {
    this.map.set(taskId, target);
  }

  delete(taskId: string): void {
    this.map.delete(taskId);
  }

  /** The instance's target; `route` (from Redis with its slot) saves reading its task. */
  async get(taskId: string, route?: { ip: string; port: number }): Promise<ProxyTarget | undefined> {
    const known = this.map.get(taskId);
    if (known) return known;
    const listening = route ?? await this.readListening(taskId);
    if (!listening) return undefined;
    const target = { ip: listening.ip, port: listening.port, cgroupsPath: `/berth/${taskId}` };
    if (this.map.size >= MAX_TARGETS) this.map.clear();
    this.map.set(taskId, target);
    return target;
  }

  /** Where the instance listens, from its task: only while it runs on this node. */
  private async readListening(taskId: string): Promise<{ ip: string; port: number } | undefined> {
    const task = asInstance(await getTask(this.redis, taskId));
    if (!task || task.nodeId !== this.nodeId || task.lastStatus !== 'RUNNING' || !task.ipAddress) return undefined;
    return { ip: task.ipAddress, port: Number(task.functionPort) || 8080 };
  }
}

/** Targets remembered at most; past it the map starts over from Redis (a gateway's view sees no stops). */
const MAX_TARGETS = 10_000;

export const PROXY_PATH = /^\/v1\/proxy\/([a-f0-9]{32})(\/[^]*)?$/;
const TOKEN_HEADER = PROXY_HEADERS.agentToken;
/** Under load, the cgroup's peak is read once per this many ms per instance. */
const PEAK_CACHE_MS = 100;

function sendJson(res: http.ServerResponse, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', ...extra }).end(JSON.stringify({ error: { code, message } }));
}

export interface Proxy {
  /** Answers `ANY /v1/proxy/<taskId>/<path>`. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** This node's instances, for a gateway in the same process. */
  local: LocalNode;
  /** Closes the connections to the instances. */
  close(): Promise<void>;
}

/** The instances of `targets`, for a gateway on this host; reads their peak memory from their cgroups. */
export function createLocalNode(targets: ProxyTargets): LocalNode & { peakMemoryMiB(cgroupsPath: string): number | undefined } {
  const cgroups = new CgroupReader();
  /** The instance's peak memory, read from its cgroup at most every PEAK_CACHE_MS. */
  const peaks = new Map<string, { at: number; mib: number | undefined }>();
  // Read synchronously: a cgroup file is the kernel's counter, never the disk,
  // and an asynchronous read (open, fstat, read, close on the thread pool) kept
  // every answer of the moment waiting for it, milliseconds on a busy host.
  function peakMemoryMiB(cgroupsPath: string): number | undefined {
    const hit = peaks.get(cgroupsPath);
    if (hit && Date.now() - hit.at < PEAK_CACHE_MS) return hit.mib;
    if (peaks.size > 10_000) peaks.clear();
    const mib = readPeakMemoryMiB(cgroupsPath);
    peaks.set(cgroupsPath, { at: Date.now(), mib });
    return mib;
  }

  function readPeakMemoryMiB(cgroupsPath: string): number | undefined {
    const mem = cgroups.dir('memory', cgroupsPath);
    if (!mem) return undefined;
    let raw: string;
    try {
      raw = readFileSync(path.join(mem.dir, mem.v2 ? 'memory.peak' : 'memory.max_usage_in_bytes'), 'utf8');
    } catch {
      return undefined; // the instance's cgroup is gone
    }
    const bytes = Number(raw.trim());
    return Number.isFinite(bytes) && bytes > 0 ? Math.ceil(bytes / 2 ** 20) : undefined;
  }

  return {
    peakMemoryMiB,
    async instance(taskId, route) {
      const target = await targets.get(taskId, route);
      return target && { ip: target.ip, port: target.port, peakMemoryMiB: () => peakMemoryMiB(target.cgroupsPath) };
    },
  };
}

export function createProxy(o: { token: string; targets: ProxyTargets; logger: Logger }): Proxy {
  // The gateway's timeout is the only one (it drops the call).
  const upstream = upstreamAgent();
  const expected = Buffer.from(o.token);
  const local = createLocalNode(o.targets);

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const given = Buffer.from(String(req.headers[TOKEN_HEADER] ?? ''));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      sendJson(res, 401, 'UNAUTHORIZED', 'The agent token is required');
      req.resume();
      return;
    }
    const match = PROXY_PATH.exec(req.url ?? '');
    if (!match) {
      sendJson(res, 404, 'NOT_FOUND', 'No such route');
      req.resume();
      return;
    }
    const taskId = match[1]!;
    const upstreamPath = match[2] ?? '/';
    void o.targets.get(taskId).then((target) => {
      if (!target) {
        sendJson(res, 404, 'INSTANCE_NOT_FOUND', `No running function instance ${taskId} on this node`, { [PROXY_HEADERS.proxyError]: 'INSTANCE_NOT_FOUND' });
        req.resume();
        return;
      }
      const headers = forwardedHeaders(req.headers, NOT_FORWARDED);
      const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
      if (!hasBody) delete headers['content-length'];
      const started = process.hrtime.bigint();
      const body = new AnswerBody();
      let abortUpstream: ((reason: Error) => void) | undefined;
      let answered = false;
      // The caller went away (or timed out): stop the request to the instance too.
      res.once('close', () => {
        if (!res.writableFinished) abortUpstream?.(new Error('the caller went away'));
      });
      upstream.dispatch({
        origin: `http://${target.ip}:${target.port}`, method: (req.method ?? 'GET') as Dispatcher.HttpMethod, path: upstreamPath,
        headers, body: hasBody ? req : null,
      }, {
        onConnect: (abort) => {
          abortUpstream = abort;
          if (res.destroyed) abort(new Error('the caller went away'));
        },
        onHeaders: (status, rawHeaders, resume, statusText) => {
          if (status < 200) return true; // 1xx: the final answer follows
          answered = true;
          body.control(resume);
          const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
          const out: http.OutgoingHttpHeaders = answerHeaders(rawHeaders);
          out[PROXY_HEADERS.duration] = durationMs.toFixed(2);
          const mib = local.peakMemoryMiB(target.cgroupsPath);
          if (mib !== undefined) out[PROXY_HEADERS.maxMemory] = String(mib);
          if (res.destroyed) return true;
          res.writeHead(status, statusText, out);
          body.pipe(res);
          return true;
        },
        onData: (chunk) => body.push(chunk),
        onComplete: () => body.end(),
        onError: (err: NodeJS.ErrnoException) => {
          if (answered) {
            body.fail(err);
            return;
          }
          sendJson(res, 502, 'INSTANCE_UNREACHABLE', `The instance did not answer: ${err.code ?? err.message}`, { [PROXY_HEADERS.proxyError]: err.code ?? 'ERROR' });
        },
      });
    }, (err: Error) => {
      o.logger.warn({ taskId, err: err.message }, 'proxy lookup failed');
      sendJson(res, 503, 'UNAVAILABLE', 'The agent could not look up the instance');
    });
  };
  return { handle, local, close: () => upstream.destroy() };
}
