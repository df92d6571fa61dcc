// A function that allocates memory on request: ?mb=N touches N MiB for the
// request. Past the function's memory limit the kernel OOM-kills the instance:
// the request answers 502 with "OutOfMemoryError: container killed due to memory
// usage", and the next request goes to a fresh instance.
/* global process, URL, Buffer */
import http from 'node:http';

const server = http.createServer((req, res) => {
  const mb = Number(new URL(req.url, 'http://fn').searchParams.get('mb')) || 16;
  const keep = [];
  for (let i = 0; i < mb; i++) keep.push(Buffer.alloc(1 << 20, 1)); // filled, so every page is really used
  const rssMiB = Math.round(process.memoryUsage().rss / 2 ** 20);
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ allocatedMiB: keep.length, rssMiB }) + '\n');
});
server.listen(Number(process.env.PORT || 8080));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
