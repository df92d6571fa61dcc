// A CPU-bound function: counts the primes below ?n= (default 2,000,000) with a
// plain sieve, so its duration follows the instance's CPU units.
/* global process, URL */
import http from 'node:http';

function countPrimes(n) {
  const composite = new Uint8Array(n + 1);
  let count = 0;
  for (let i = 2; i <= n; i++) {
    if (composite[i]) continue;
    count++;
    for (let j = i * i; j <= n; j += i) composite[j] = 1;
  }
  return count;
}

const server = http.createServer((req, res) => {
  const n = Math.min(50_000_000, Number(new URL(req.url, 'http://fn').searchParams.get('n')) || 2_000_000);
  const started = process.hrtime.bigint();
  const primes = countPrimes(n);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ n, primes, ms: Math.round(ms) }) + '\n');
});
server.listen(Number(process.env.PORT || 8080));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
