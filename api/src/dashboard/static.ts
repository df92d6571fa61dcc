// The dashboard's files: the page at `/`, its modules under /dashboard/, and
// uPlot from node_modules under /vendor/uplot/. Only the files listed when the
// app starts are served (no path from the URL reaches the file system), and no
// API key is needed for them: the page asks for one and sends it as a bearer.
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { BerthError } from '../../../common/errors.ts';

const DASHBOARD_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dashboard');
const UPLOT_DIR = path.dirname(createRequire(import.meta.url).resolve('uplot'));
const UPLOT_FILES = ['uPlot.esm.js', 'uPlot.min.css'];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Scripts and styles from this origin only; uPlot sets inline styles from its code. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

function listFiles(dir: string, only?: string[]): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    if (TYPES[path.extname(name)] && (!only || only.includes(name))) files.set(name, path.join(dir, name));
  }
  return files;
}

async function sendFile(reply: FastifyReply, file: string | undefined): Promise<FastifyReply> {
  if (!file) throw new BerthError('NOT_FOUND', 'No such file');
  const body = await readFile(file);
  return reply
    .type(TYPES[path.extname(file)] ?? 'application/octet-stream')
    .header('cache-control', 'no-cache')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('content-security-policy', CSP)
    .send(body);
}

export function installDashboardFiles(app: FastifyInstance): void {
  const own = listFiles(DASHBOARD_DIR);
  const vendor = listFiles(UPLOT_DIR, UPLOT_FILES);
  const config = { access: { public: true } };
  app.get('/', { config }, (_request, reply) => sendFile(reply, own.get('index.html')));
  app.get('/dashboard/:file', { config }, (request, reply) => sendFile(reply, own.get((request.params as { file: string }).file)));
  app.get('/vendor/uplot/:file', { config }, (request, reply) => sendFile(reply, vendor.get((request.params as { file: string }).file)));
}
