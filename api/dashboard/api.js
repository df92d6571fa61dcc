// Calls to the Berth API with the key from sessionStorage as a bearer token,
// and the live event stream (server-sent events read through fetch, since
// EventSource cannot send an Authorization header).
/* global fetch, sessionStorage, TextDecoderStream, AbortController, setTimeout, clearTimeout */

const KEY = 'berth.apiKey';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? 'HTTP_' + status;
  }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

export async function api(method, route, body) {
  const headers = { authorization: `Bearer ${session.key}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  if (!res.ok) throw new ApiError(res.status, parsed);
  return parsed;
}

/** Splits an event-stream body into { event, data, id } objects (the WHATWG rules that matter here). */
export function createSseParser(onEvent) {
  let buffer = '';
  return (chunk) => {
    buffer += chunk.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data = [];
      let id;
      let retry;
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
        else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
      }
      if (data.length > 0) onEvent({ event, data: data.join('\n'), id });
      else if (retry !== undefined) onEvent({ event: 'retry', data: '', retry });
    }
  };
}

/**
 * Keeps one event stream open on `route`, reconnecting after a drop.
 * handlers: { onEvent({event, data}), onState('connecting'|'open'|'closed'), onUnauthorized() }.
 * Returns a function that closes it for good.
 */
export function openEventStream(route, handlers) {
  let controller;
  let timer;
  let stopped = false;
  let retryMs = 2000;

  async function connect() {
    if (stopped) return;
    controller = new AbortController();
    handlers.onState?.('connecting');
    try {
      const res = await fetch(route, {
        headers: { authorization: `Bearer ${session.key}`, accept: 'text/event-stream' },
        signal: controller.signal,
        cache: 'no-store',
      });
      if (res.status === 401) {
        stopped = true;
        handlers.onState?.('closed');
        handlers.onUnauthorized?.();
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      handlers.onState?.('open');
      const parse = createSseParser((ev) => {
        if (ev.event === 'retry') retryMs = ev.retry;
        else handlers.onEvent(ev);
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parse(value);
      }
    } catch (err) {
      if (stopped) return;
      handlers.onError?.(err);
    }
    if (stopped) return;
    handlers.onState?.('connecting');
    timer = setTimeout(connect, retryMs);
  }

  void connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller?.abort();
    handlers.onState?.('closed');
  };
}
