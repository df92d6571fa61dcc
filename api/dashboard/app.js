// The Berth dashboard: log in with an API key (kept in sessionStorage), then
// tasks, functions and nodes, kept up to date by one event stream
// (GET /v1/events) rather than by reloading.
/* global document, window, location, history, setInterval, setTimeout, clearTimeout */
import { api, ApiError, openEventStream, session } from './api.js';
import { TaskCharts } from './charts.js';
import { renderFunctions } from './functions.js';

const MAX_WATCHED = 20;
const MAX_SAMPLES = 1200;
const $ = (sel) => document.querySelector(sel);

const state = {
  tasks: new Map(),
  latest: new Map(),
  selected: null,
  samples: [],
  charts: null,
  closeStream: null,
  watchKey: null,
  watchTimer: null,
  nodes: null,
  timers: [],
  windowS: 900,
};

// ---------- formatting ----------

export function formatBytes(n) {
  if (n == null || Number.isNaN(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

const pct = (n) => (n == null ? '–' : `${n.toFixed(1)} %`);
const shortId = (id) => id.slice(0, 8);
const when = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '–');

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof window.Node ? c : String(c));
  return e;
}

const badge = (status) => el('span', { class: `badge status-${(status ?? '').toLowerCase()}` }, status ?? '?');

// ---------- login ----------

function showLogin(message) {
  stopEverything();
  $('#app').hidden = true;
  $('#logout').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message ?? '';
  $('#api-key').focus();
}

async function login(key) {
  session.key = key;
  try {
    await api('GET', '/v1/tasks?limit=1');
  } catch (err) {
    session.key = null;
    showLogin(err instanceof ApiError && err.status === 401 ? 'That API key was refused.' : `Could not reach the API: ${err.message}`);
    return;
  }
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#logout').hidden = false;
  start();
}

function logout() {
  session.key = null;
  history.replaceState(null, '', location.pathname);
  showLogin();
}

// ---------- the event stream ----------

function watchedTasks() {
  const ids = [];
  if (state.selected) ids.push(state.selected);
  const live = [...state.tasks.values()]
    .filter((t) => t.lastStatus !== 'STOPPED')
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  for (const t of live) {
    if (ids.length >= MAX_WATCHED) break;
    if (!ids.includes(t.taskId)) ids.push(t.taskId);
  }
  return ids.sort();
}

function scheduleWatch() {
  clearTimeout(state.watchTimer);
  state.watchTimer = setTimeout(openStream, 200);
}

function openStream() {
  const ids = watchedTasks();
  const key = ids.join(',');
  if (state.closeStream && key === state.watchKey) return;
  state.closeStream?.();
  state.watchKey = key;
  state.closeStream = openEventStream(`/v1/events${key ? `?tasks=${key}` : ''}`, {
    onEvent: onStreamEvent,
    onState: (s) => {
      const badgeEl = $('#stream-status');
      badgeEl.dataset.state = s;
      badgeEl.textContent = s === 'open' ? 'live' : s;
    },
    onUnauthorized: () => showLogin('The API key is no longer valid.'),
  });
}

function onStreamEvent({ event, data }) {
  let body;
  try { body = JSON.parse(data); } catch { return; }
  if (event === 'task') onTask(body);
  else if (event === 'stats') onStats(body.taskId, body.sample);
  else if (event === 'nodes') renderNodes(body.nodes);
}

function onTask(task) {
  const before = state.tasks.get(task.taskId);
  state.tasks.set(task.taskId, task);
  renderTaskRow(task);
  if (task.taskId === state.selected) renderDetail();
  if (!before || (before.lastStatus === 'STOPPED') !== (task.lastStatus === 'STOPPED')) scheduleWatch();
  $('#task-count').textContent = String(state.tasks.size);
}

function onStats(taskId, sample) {
  state.latest.set(taskId, sample);
  const task = state.tasks.get(taskId);
  if (task) renderTaskRow(task);
  if (taskId === state.selected) {
    addSamples([sample]);
    renderDetail();
  }
}

function addSamples(samples) {
  const seen = new Set(state.samples.map((s) => s.time));
  for (const s of samples) if (!seen.has(s.time)) state.samples.push(s);
  state.samples.sort((a, b) => a.time.localeCompare(b.time));
  if (state.samples.length > MAX_SAMPLES) state.samples.splice(0, state.samples.length - MAX_SAMPLES);
}

// ---------- tasks ----------

function taskRowCells(task) {
  const s = task.lastStatus === 'STOPPED' ? undefined : state.latest.get(task.taskId);
  return [
    el('td', {}, el('code', { title: task.taskId }, shortId(task.taskId)), ' ', task.taskDefinition),
    el('td', {}, badge(task.lastStatus)),
    el('td', { class: 'num', 'data-field': 'cpu' }, s ? `${pct(s.cpuPercent)} (${pct(s.cpuLimitPercent)} of limit)` : '–'),
    el('td', { class: 'num', 'data-field': 'memory' }, s ? `${formatBytes(s.memoryBytes)} / ${formatBytes(s.memoryLimitBytes)}` : '–'),
    el('td', {}, task.nodeId ?? '–'),
    el('td', {}, when(task.startedAt ?? task.createdAt)),
    el('td', { class: 'reason' }, task.stoppedReason ?? ''),
  ];
}

function renderTaskRow(task) {
  const body = $('#tasks tbody');
  let row = body.querySelector(`tr[data-task-id="${task.taskId}"]`);
  if (!row) {
    row = el('tr', { dataset: { taskId: task.taskId }, tabindex: '0' });
    row.addEventListener('click', () => selectTask(task.taskId));
    row.addEventListener('keydown', (e) => { if (e.key === 'Enter') selectTask(task.taskId); });
    // Newest first.
    const after = [...body.rows].find((r) => (state.tasks.get(r.dataset.taskId)?.createdAt ?? '') < task.createdAt);
    body.insertBefore(row, after ?? null);
  }
  row.dataset.status = task.lastStatus;
  row.classList.toggle('selected', task.taskId === state.selected);
  row.replaceChildren(...taskRowCells(task));
  $('#tasks-empty').hidden = state.tasks.size > 0;
}

async function selectTask(taskId) {
  if (state.selected === taskId) return;
  state.selected = taskId;
  state.samples = [];
  history.replaceState(null, '', `#task=${taskId}`);
  for (const row of $('#tasks tbody').rows) row.classList.toggle('selected', row.dataset.taskId === taskId);
  $('#task-detail').hidden = false;
  renderDetail();
  scheduleWatch();
  try {
    const stats = await api('GET', `/v1/tasks/${taskId}/stats?limit=900`);
    if (state.selected !== taskId) return;
    addSamples([...stats.history].reverse());
    if (stats.current) addSamples([stats.current]);
    renderDetail();
  } catch (err) {
    if (state.selected === taskId) $('#detail-error').textContent = `Could not read the task's history: ${err.message}`;
  }
}

function renderDetail() {
  const taskId = state.selected;
  const box = $('#task-detail');
  if (!taskId) { box.hidden = true; return; }
  const task = state.tasks.get(taskId);
  const last = state.samples[state.samples.length - 1];
  box.dataset.taskId = taskId;
  box.dataset.status = task?.lastStatus ?? '';
  box.dataset.samples = String(state.samples.length);
  const fields = {
    cpuPercent: last?.cpuPercent, cpuLimitPercent: last?.cpuLimitPercent, memoryBytes: last?.memoryBytes,
    memoryPeakBytes: last?.memoryPeakBytes, memoryLimitBytes: last?.memoryLimitBytes, oomKills: last?.oomKills, pids: last?.pids,
  };
  for (const [k, v] of Object.entries(fields)) {
    const attr = k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
    if (v === undefined) delete box.dataset[k];
    else box.dataset[k] = String(v);
    const out = box.querySelector(`[data-readout="${attr}"]`);
    if (out) out.textContent = v === undefined ? '–' : k.startsWith('cpu') ? pct(v) : k.startsWith('memory') ? formatBytes(v) : String(v);
  }
  box.querySelector('[data-readout="sample-time"]').textContent = last ? new Date(last.time).toLocaleTimeString() : '–';
  $('#detail-title').replaceChildren(task?.taskDefinition ?? '', ' ', el('code', {}, taskId), ' ', badge(task?.lastStatus));
  $('#detail-reason').textContent = task?.stoppedReason
    ? `${task.stoppedReason}${task.exitCode !== undefined ? ` (exit code ${task.exitCode})` : ''}` : '';
  $('#stop-task').hidden = !task || task.lastStatus === 'STOPPED' || task.desiredStatus === 'STOPPED';
  if (!state.charts) {
    state.charts = new TaskCharts($('#cpu-chart'), $('#memory-chart'));
    state.charts.setWindow(state.windowS);
  }
  state.charts.update(task, state.samples);
  // What the time line marks, for whoever reads the page without eyes (and the tests).
  box.dataset.markers = state.charts.markers.map((m) => m.kind).join(' ');
}

async function stopSelected() {
  const taskId = state.selected;
  if (!taskId) return;
  $('#stop-task').disabled = true;
  try {
    onTask(await api('POST', `/v1/tasks/${taskId}/stop`, { reason: 'Stopped from the dashboard' }));
  } catch (err) {
    $('#detail-error').textContent = `Could not stop the task: ${err.message}`;
  } finally {
    $('#stop-task').disabled = false;
  }
}

// ---------- nodes ----------

function bar(used, total, label) {
  const fraction = total > 0 ? Math.min(1, used / total) : 0;
  return el('div', { class: 'bar', title: `${label}: ${Math.round(fraction * 100)} %` },
    el('div', { class: `fill${fraction > 0.9 ? ' high' : ''}`, style: `width:${(fraction * 100).toFixed(1)}%` }),
    el('span', {}, label));
}

function renderNodes(nodes) {
  state.nodes = nodes;
  const list = $('#nodes-list');
  list.replaceChildren(...nodes.map((n) => el('div', { class: 'node', dataset: { nodeId: n.nodeId, status: n.status } },
    el('div', { class: 'node-head' }, el('strong', {}, n.nodeId), ' ', badge(n.status), ' ', el('small', {}, n.address ?? '')),
    bar(n.cpuReserved, n.cpuTotal, `CPU ${n.cpuReserved} / ${n.cpuTotal} units`),
    bar(n.memoryReserved, n.memoryTotal, `Memory ${n.memoryReserved} / ${n.memoryTotal} MiB`),
  )));
  $('#nodes-note').textContent = nodes.length === 0 ? 'No node has registered.' : '';
}

async function loadNodesOnce() {
  try {
    renderNodes((await api('GET', '/v1/nodes')).nodes);
  } catch (err) {
    $('#nodes-note').textContent = err instanceof ApiError && err.status === 403
      ? 'Nodes are shown to admin keys only.' : `Could not list nodes: ${err.message}`;
  }
}

// ---------- start and stop ----------

function stopEverything() {
  state.closeStream?.();
  state.closeStream = null;
  state.watchKey = null;
  for (const t of state.timers) clearTimeout(t);
  state.timers = [];
  state.charts?.destroy();
  state.charts = null;
  state.tasks.clear();
  state.latest.clear();
  state.selected = null;
  state.samples = [];
  $('#tasks tbody').replaceChildren();
  $('#task-detail').hidden = true;
}

function start() {
  openStream();
  void loadNodesOnce();
  const fnTick = () => { void renderFunctions($('#functions')); };
  fnTick();
  state.timers.push(setInterval(fnTick, 5000));
  // The time line slides even when no sample comes (a stopped task).
  state.timers.push(setInterval(() => { if (state.selected && state.charts) state.charts.update(state.tasks.get(state.selected), state.samples); }, 1000));
  const wanted = /^#task=([a-f0-9]{32})$/.exec(location.hash)?.[1];
  if (wanted) void selectTask(wanted);
  document.body.dataset.ready = 'true';
}

$('#login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void login($('#api-key').value.trim());
});
$('#logout').addEventListener('click', logout);
$('#stop-task').addEventListener('click', () => void stopSelected());
for (const b of document.querySelectorAll('#chart-window button')) {
  b.addEventListener('click', () => {
    state.windowS = Number(b.dataset.window);
    for (const other of document.querySelectorAll('#chart-window button')) other.setAttribute('aria-pressed', String(other === b));
    if (state.charts) {
      state.charts.setWindow(state.windowS);
      state.charts.update(state.tasks.get(state.selected), state.samples);
    }
  });
}
window.addEventListener('resize', () => state.charts?.resize($('#cpu-chart').clientWidth));

if (session.key) void login(session.key);
else showLogin();
