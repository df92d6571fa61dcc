// The dashboard in a real browser against the real all-in-one: log in with the
// admin key, run a CPU-bound busybox task through the API, watch its CPU and
// memory arrive over the event stream (no reload), stop it from the page and
// see STOPPED. Screenshots in test-artifacts/dashboard/.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAllInOne, waitForTask, type AllInOne } from '../harness/allinone.ts';
import { fnConfig } from '../functions/fixture.ts';
import { CHROMIUM, openBrowser, type Browser } from './browser.ts';

let aio: AllInOne | undefined;
let browser: Browser | undefined;
const taskIds: string[] = [];
const functions: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  [aio, browser] = await Promise.all([startAllInOne(), openBrowser()]);
}, 180_000);

afterAll(async () => {
  for (const name of functions) await aio?.api('DELETE', `/v1/functions/${name}`).catch(() => undefined);
  for (const id of taskIds) await aio?.api('POST', `/v1/tasks/${id}/stop`).catch(() => undefined);
  await browser?.close();
  await aio?.stop();
}, 120_000);

describe('the dashboard', () => {
  it('serves the page, its modules and uPlot without an API key, and the stream only with one', async () => {
    const page = await fetch(aio!.url + '/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await page.text()).toContain('/dashboard/app.js');
    for (const file of ['/dashboard/app.js', '/dashboard/api.js', '/dashboard/charts.js', '/vendor/uplot/uPlot.esm.js', '/vendor/uplot/uPlot.min.css']) {
      expect((await fetch(aio!.url + file)).status, file).toBe(200);
    }
    const missing = await fetch(aio!.url + '/dashboard/..%2F..%2Fpackage.json');
    expect(missing.status).toBe(404);
    expect((await fetch(aio!.url + '/vendor/uplot/uPlot.cjs.js')).status).toBe(404);
    const noKey = await fetch(aio!.url + '/v1/events');
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } });
  });

  it('refuses a wrong key on the login form', async () => {
    const { page } = browser!;
    await page.goto(aio!.url + '/');
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#api-key', 'berth_not-a-key');
    await page.click('#login-form button[type=submit]');
    await expect.poll(() => page.textContent('#login-error')).toMatch(/refused/);
    expect(await page.isHidden('#app')).toBe(true);
  });

  it('shows a CPU-bound task\'s CPU and memory live, then STOPPED after stopping it from the page', async () => {
    const { page } = browser!;
    await page.goto(aio!.url + '/');
    await page.fill('#api-key', aio!.adminKey);
    await page.click('#login-form button[type=submit]');
    await page.locator('#app').waitFor({ state: 'visible' });
    await page.waitForSelector('#stream-status[data-state="open"]');
    // Set after login: a reload would lose it.
    await page.evaluate(() => { (window as unknown as { berthMarker: number }).berthMarker = 42; });

    // The node (admin key) with its allocation bars.
    await page.waitForSelector(`#nodes .node[data-node-id="${aio!.nodeId}"] .bar`);

    const def = await aio!.api('POST', '/v1/task-definitions', {
      family: 'spin', image: 'berth/busybox:latest', command: ['sh', '-c', 'while :; do :; done'], cpu: 256, memory: 64, stopTimeout: 2,
    });
    expect(def.status).toBe(201);
    const run = await aio!.api('POST', '/v1/tasks', { taskDefinition: 'spin' });
    expect(run.status).toBe(201);
    const taskId: string = run.body.tasks[0].taskId;
    taskIds.push(taskId);

    // The row appears by itself (the stream), then turns RUNNING.
    const row = page.locator(`#tasks tr[data-task-id="${taskId}"]`);
    await row.waitFor({ state: 'attached', timeout: 10_000 });
    await expect.poll(() => row.getAttribute('data-status'), { timeout: 60_000 }).toBe('RUNNING');
    await row.click();

    const detail = page.locator(`#task-detail[data-task-id="${taskId}"]`);
    await detail.waitFor({ state: 'visible' });
    await page.waitForFunction((id) => {
      const d = document.querySelector<HTMLElement>(`#task-detail[data-task-id="${id}"]`)?.dataset;
      return !!d && Number(d.cpuPercent) > 0 && Number(d.memoryBytes) > 0 && Number(d.samples) >= 3;
    }, taskId, { timeout: 30_000 });

    const seen = await detail.evaluate((el) => ({ ...(el as HTMLElement).dataset }));
    expect(Number(seen.cpuPercent)).toBeGreaterThan(0);
    // 256 units = a quarter vCPU: the loop uses about all of its limit.
    expect(Number(seen.cpuLimitPercent)).toBeGreaterThan(Number(seen.cpuPercent));
    expect(Number(seen.memoryBytes)).toBeGreaterThan(0);
    expect(Number(seen.memoryLimitBytes)).toBe(64 * 2 ** 20);
    expect(Number(seen.memoryPeakBytes)).toBeGreaterThanOrEqual(Number(seen.memoryBytes));
    expect(await page.textContent('[data-readout="cpu-percent"]')).toMatch(/%/);
    // uPlot drew both charts on canvases, with the samples as data.
    expect(await page.locator('#cpu-chart canvas').count()).toBeGreaterThan(0);
    expect(await page.locator('#memory-chart canvas').count()).toBeGreaterThan(0);
    const box = await page.locator('#cpu-chart canvas').first().boundingBox();
    expect(box?.width).toBeGreaterThan(200);
    // The list shows the live values too.
    await expect.poll(() => row.locator('[data-field="cpu"]').textContent()).toMatch(/%/);

    // More samples arrive without a reload.
    const before = Number(seen.samples);
    await page.waitForFunction((n) => Number(document.querySelector<HTMLElement>('#task-detail')?.dataset.samples) > n, before, { timeout: 10_000 });
    await page.click('#chart-window button[data-window="60"]');
    expect(await page.getAttribute('#chart-window button[data-window="60"]', 'aria-pressed')).toBe('true');
    await browser!.screenshot('running');

    await page.click('#stop-task');
    await expect.poll(() => detail.getAttribute('data-status'), { timeout: 60_000 }).toBe('STOPPED');
    await expect.poll(() => row.getAttribute('data-status')).toBe('STOPPED');
    expect(await page.textContent('#detail-reason')).toMatch(/Stopped from the dashboard/);
    const stopped = await waitForTask(aio!, taskId, 'STOPPED');
    expect(stopped).toMatchObject({ lastStatus: 'STOPPED', stopCode: 'UserInitiated' });
    await browser!.screenshot('stopped');

    expect(await page.evaluate(() => (window as unknown as { berthMarker?: number }).berthMarker)).toBe(42);
    expect(await page.getAttribute('#functions', 'data-available')).toMatch(/^(true|false)$/);
    expect(browser!.pageErrors).toEqual([]);
  }, 150_000);

  it('marks OOM kills on the time line while the task goes on', async () => {
    const { page } = browser!;
    // A child that doubles a string until the 16 MiB limit kills it, again and again.
    const def = await aio!.api('POST', '/v1/task-definitions', {
      family: 'oom', image: 'berth/busybox:latest', memory: 16, cpu: 256, stopTimeout: 1,
      command: ['sh', '-c', 'while :; do sh -c \'a=x; while :; do a=$a$a; done\'; sleep 1; done'],
    });
    expect(def.status).toBe(201);
    const run = await aio!.api('POST', '/v1/tasks', { taskDefinition: 'oom' });
    const taskId: string = run.body.tasks[0].taskId;
    taskIds.push(taskId);
    const row = page.locator(`#tasks tr[data-task-id="${taskId}"]`);
    await expect.poll(() => row.getAttribute('data-status'), { timeout: 60_000 }).toBe('RUNNING');
    await row.click();
    await page.waitForFunction((id) => {
      const d = document.querySelector<HTMLElement>(`#task-detail[data-task-id="${id}"]`)?.dataset;
      return !!d && Number(d.oomKills) > 0 && (d.markers ?? '').split(' ').includes('oom');
    }, taskId, { timeout: 30_000 });
    expect(await page.getAttribute('#task-detail', 'data-status')).toBe('RUNNING');
    expect(await page.textContent('[data-readout="oom-kills"]')).toMatch(/^[1-9]/);
    await browser!.screenshot('oom');
    expect((await aio!.api('POST', `/v1/tasks/${taskId}/stop`)).status).toBe(200);
    await expect.poll(() => row.getAttribute('data-status'), { timeout: 30_000 }).toBe('STOPPED');
    expect(browser!.pageErrors).toEqual([]);
  }, 120_000);

  it('keeps the key and the chosen task for the tab across a reload; Log out forgets the key', async () => {
    const { page } = browser!;
    const selected = await page.getAttribute('#task-detail', 'data-task-id');
    expect(page.url()).toContain(`#task=${selected}`);
    await page.reload();
    await page.locator('#app').waitFor({ state: 'visible' });
    await page.waitForSelector(`#task-detail[data-task-id="${selected}"][data-status="STOPPED"]`);
    // The history of a stopped task comes from GET /v1/tasks/{id}/stats.
    await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('#task-detail')?.dataset.samples) > 0);
    await page.click('#logout');
    await page.locator('#login').waitFor({ state: 'visible' });
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.reload();
    await page.locator('#login').waitFor({ state: 'visible' });
    expect(await page.isHidden('#app')).toBe(true);
    expect(browser!.pageErrors).toEqual([]);
  });

  it('shows a function\'s invocations, errors, latency, cold starts and instances', async () => {
    const { page } = browser!;
    await page.goto(aio!.url + '/');
    await page.fill('#api-key', aio!.adminKey);
    await page.click('#login-form button[type=submit]');
    await page.locator('#app').waitFor({ state: 'visible' });
    const deploy = await aio!.api('POST', '/v1/functions', fnConfig('dash-fn', { idleTimeout: 300 }));
    expect(deploy.status).toBe(201);
    functions.push('dash-fn');
    const invoke = (body: string) => fetch(`${aio!.url}/v1/functions/dash-fn/invoke`, {
      method: 'POST', body, headers: { authorization: `Bearer ${aio!.adminKey}` },
    });
    expect((await invoke('hello')).status).toBe(200);
    expect((await invoke('hello')).status).toBe(200);
    expect((await invoke('fail')).status).toBe(500);

    const row = page.locator('#functions tr[data-function="dash-fn"]');
    const cell = (field: string) => row.locator(`[data-field="${field}"]`).textContent();
    await expect.poll(() => cell('invocations'), { timeout: 15_000 }).toBe('3');
    expect(await cell('errors')).toBe('1');
    expect(await cell('cold-starts')).toBe('1');
    expect(Number(await cell('instances'))).toBeGreaterThanOrEqual(1);
    expect(await cell('p50')).toMatch(/ ms$/);
    expect(await cell('status')).toBe('ACTIVE');
    expect(await page.getAttribute('#functions', 'data-available')).toBe('true');
    await browser!.screenshot('functions');
    expect(browser!.pageErrors).toEqual([]);
  }, 120_000);

  // The page's own modules, run in the page (as a string: vitest would rewrite an import() in a function).
  const inPage = <T>(code: string): Promise<T> => browser!.page.evaluate(code) as Promise<T>;

  it('marks OOM kills, restarts and status changes from samples and the task (markersFor, in the page)', async () => {
    const at = (sec: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, sec)).toISOString();
    const samples = [
      { time: at(1), cpuUsageNs: 100, oomKills: 0 },
      { time: at(2), cpuUsageNs: 200, oomKills: 1 },
      { time: at(3), cpuUsageNs: 50, oomKills: 1 },
      { time: at(4), cpuUsageNs: 90, oomKills: 1 },
    ];
    const task = { startedAt: at(0), stoppingAt: at(5), stoppedAt: at(6), stoppedReason: 'OutOfMemoryError: container killed due to memory usage' };
    const markers = await inPage<{ t: number; kind: string; label: string }[]>(
      `import('/dashboard/charts.js').then((m) => m.markersFor(${JSON.stringify(task)}, ${JSON.stringify(samples)}))`,
    );
    // The OOM kill seen in the samples is not marked twice at the stop.
    expect(markers.map((m) => `${m.t % 60}:${m.kind}:${m.label}`)).toEqual(['2:oom:OOM kill', '3:restart:restart', '0:status:started', '5:status:stopping', '6:status:stopped']);
  });

  it('parses server-sent events as the WHATWG rules say (createSseParser, in the page)', async () => {
    const chunks = ['retry: 2000\n\n: keep-alive\n\nevent: task\r\ndata: {"a":', '1}\r\n\r\ndata: one\ndata: two\n\nevent: empty\n\n'];
    const events = await inPage<unknown[]>(`import('/dashboard/api.js').then((m) => {
      const out = [];
      const parse = m.createSseParser((e) => out.push(e));
      for (const c of ${JSON.stringify(chunks)}) parse(c);
      return JSON.parse(JSON.stringify(out));
    })`);
    expect(events).toEqual([
      { event: 'retry', data: '', retry: 2000 },
      { event: 'task', data: '{"a":1}' },
      { event: 'message', data: 'one\ntwo' },
    ]);
  });
});
