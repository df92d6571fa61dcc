// The functions panel. It reads GET /v1/functions and each function's stats
// (GET /v1/functions/{name}/stats: counters, latency percentiles in ms) when
// the API has them, and says so plainly when it does not (an API without
// functions answers 404 or 501), so the rest of the page never depends on it.
// Field names are read leniently, so a renamed field shows as a dash, not an error.
/* global document */
import { api, ApiError } from './api.js';

function pick(obj, ...paths) {
  for (const p of paths) {
    let v = obj;
    for (const k of p.split('.')) v = v == null ? undefined : v[k];
    if (v !== undefined && v !== null) return v;
  }
  return undefined;
}

const ms = (v) => (typeof v === 'number' ? `${v < 10 ? v.toFixed(1) : Math.round(v)} ms` : '–');
const num = (v) => (typeof v === 'number' ? String(v) : '–');

async function statsOf(fn) {
  if (fn.stats && typeof fn.stats === 'object') return fn.stats;
  try {
    return await api('GET', `/v1/functions/${encodeURIComponent(fn.name ?? fn.functionName)}/stats`);
  } catch {
    return {};
  }
}

function row(fn, stats) {
  const s = { ...fn, ...stats };
  const cells = [
    fn.name ?? fn.functionName ?? '?',
    pick(s, 'status', 'state') ?? '',
    num(pick(s, 'invocations', 'invocationsTotal', 'counts.invocations', 'requests')),
    num(pick(s, 'errors', 'errorsTotal', 'counts.errors')),
    num(pick(s, 'timeouts', 'timeoutsTotal')),
    num(pick(s, 'throttles', 'throttlesTotal')),
    ms(pick(s, 'latency.p50', 'latencyMs.p50', 'latencyP50Ms', 'p50Ms')),
    ms(pick(s, 'latency.p95', 'latencyMs.p95', 'latencyP95Ms', 'p95Ms')),
    ms(pick(s, 'latency.p99', 'latencyMs.p99', 'latencyP99Ms', 'p99Ms')),
    num(pick(s, 'coldStarts', 'coldStartsTotal', 'counts.coldStarts')),
    num(pick(s, 'instances', 'instanceCount', 'instances.count', 'replicas')),
  ];
  const fields = ['name', 'status', 'invocations', 'errors', 'timeouts', 'throttles', 'p50', 'p95', 'p99', 'cold-starts', 'instances'];
  const tr = document.createElement('tr');
  tr.dataset.function = cells[0];
  for (const [i, c] of cells.entries()) {
    const td = document.createElement('td');
    td.dataset.field = fields[i];
    if (i >= 2) td.className = 'num';
    td.textContent = Array.isArray(c) ? String(c.length) : String(c);
    tr.append(td);
  }
  return tr;
}

/** Fills `section` (the functions panel); never throws. */
export async function renderFunctions(section) {
  const note = section.querySelector('.note');
  const body = section.querySelector('tbody');
  let list;
  try {
    const res = await api('GET', '/v1/functions');
    list = Array.isArray(res) ? res : res?.functions ?? res?.items ?? [];
  } catch (err) {
    const missing = err instanceof ApiError && (err.status === 404 || err.status === 501 || err.status === 405);
    section.dataset.available = 'false';
    note.textContent = missing ? 'This API has no functions yet.' : `Could not list functions: ${err.message}`;
    body.replaceChildren();
    return;
  }
  section.dataset.available = 'true';
  const rows = await Promise.all(list.slice(0, 50).map(async (fn) => row(fn, await statsOf(fn))));
  body.replaceChildren(...rows);
  note.textContent = list.length === 0 ? 'No function is deployed.' : '';
}
