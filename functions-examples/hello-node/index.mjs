// Hello, as a Berth function: an HTTP server on $PORT (Cloud Run's contract).
// Any method and path; answers JSON with what it was asked.
/* global process */
import http from 'node:http';

const server = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ hello: 'from a Berth function', method: req.method, url: req.url, body }) + '\n');
  });
});
server.listen(Number(process.env.PORT || 8080));
// PID 1 in its container: no signal has a default action, so handle SIGTERM (scale-down) ourselves.
process.on('SIGTERM', () => server.close(() => process.exit(0)));
