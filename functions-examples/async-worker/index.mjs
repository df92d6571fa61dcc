// An asynchronous worker: invoke it with `X-Berth-Invocation-Type: Event` and
// a JSON event { "job": "...", "ms": 200, "fail": false }. It works for `ms`
// milliseconds and answers 200 with its result, or 500 when `fail` is true:
// Berth retries a failed event (asyncRetries, exponential backoff) and then
// dead-letters it, where GET /v1/functions/{name}/dead-letters lists it and
// POST …/dead-letters/{id}/replay runs it again.
/* global process, console, setTimeout */
import http from 'node:http';

const server = http.createServer((req, res) => {
  let raw = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { raw += chunk; });
  req.on('end', () => {
    let event = {};
    try { event = raw ? JSON.parse(raw) : {}; } catch { /* not JSON: an empty event */ }
    const id = req.headers['x-berth-function'] ? `${req.headers['x-berth-function']}` : 'worker';
    setTimeout(() => {
      if (event.fail) {
        console.error(`${id}: job ${event.job ?? '?'} failed on purpose`);
        res.statusCode = 500;
        res.end(JSON.stringify({ job: event.job, error: 'failed on purpose' }) + '\n');
        return;
      }
      console.log(`${id}: job ${event.job ?? '?'} done`);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ job: event.job, done: true, at: new Date().toISOString() }) + '\n');
    }, Math.min(60_000, Number(event.ms) || 100));
  });
});
server.listen(Number(process.env.PORT || 8080));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
