// The function the end-to-end tests deploy: a Node.js HTTP server run from the
// stock berth/node:20 image with `node -e`, whose paths exercise the gateway.
//   /sleep?ms=N   answer after N ms          /crash     exit mid-request
//   /alloc?mb=N   touch N MiB (OOM)          /stream    two chunks 500 ms apart
//   ?status=N     answer with that status    body "fail" answers 500 (unless NEVER_FAIL is set)
// Every answer is JSON: method, url, headers, body, pid, port, version, and the
// most requests it has seen at once (maxActive).
export const FUNCTION_SOURCE = `
const http = require('http');
let active = 0, maxActive = 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
http.createServer(async (q, s) => {
  active++; maxActive = Math.max(maxActive, active);
  try {
    const u = new URL(q.url, 'http://fn');
    let body = '';
    for await (const c of q) body += c;
    if (u.pathname === '/sleep') await sleep(Number(u.searchParams.get('ms')));
    if (u.pathname === '/crash') process.exit(3);
    if (u.pathname === '/alloc') {
      const keep = [];
      for (let i = 0; i < Number(u.searchParams.get('mb')); i++) keep.push(Buffer.alloc(1 << 20, 1));
      globalThis.keep = keep;
    }
    if (body === 'fail' && !process.env.NEVER_FAIL) { s.statusCode = 500; s.end('failing on purpose'); return; }
    if (u.pathname === '/stream') { s.write('first\\n'); await sleep(500); s.end('second\\n'); return; }
    s.statusCode = Number(u.searchParams.get('status') || 200);
    s.setHeader('x-fn-reply', 'yes');
    s.setHeader('content-type', 'application/json');
    s.end(JSON.stringify({ method: q.method, url: q.url, headers: q.headers, body, pid: process.pid, port: process.env.PORT, version: process.env.VERSION || '', maxActive }));
  } finally { active--; }
}).listen(Number(process.env.PORT));
`;

export function fnConfig(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, image: 'berth/node:20', command: ['-e', FUNCTION_SOURCE], memory: 128, cpu: 256, ...extra };
}
