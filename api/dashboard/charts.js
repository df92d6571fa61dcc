// The two charts of a task, CPU and memory, at one point per sample over the
// last 15 minutes, with OOM kills, restarts and status changes drawn as
// vertical markers on the time line.
/* global window */
import uPlot from '/vendor/uplot/uPlot.esm.js';

export const WINDOW_S = 15 * 60;
const MIB = 2 ** 20;
const HEIGHT = 180;

const MARKER_COLOURS = { oom: '#d62728', restart: '#9467bd', status: '#7f7f7f' };

/** Markers from the samples (OOM-kill counter rising, CPU counter reset = restart) and the task's timestamps. */
export function markersFor(task, samples) {
  const markers = [];
  for (let i = 1; i < samples.length; i++) {
    const prev = samples[i - 1];
    const s = samples[i];
    const t = Date.parse(s.time) / 1000;
    if ((s.oomKills ?? 0) > (prev.oomKills ?? 0)) markers.push({ t, kind: 'oom', label: 'OOM kill' });
    if ((s.cpuUsageNs ?? 0) < (prev.cpuUsageNs ?? 0)) markers.push({ t, kind: 'restart', label: 'restart' });
  }
  if (task) {
    const at = (iso) => Date.parse(iso) / 1000;
    if (task.startedAt) markers.push({ t: at(task.startedAt), kind: 'status', label: 'started' });
    if (task.stoppingAt) markers.push({ t: at(task.stoppingAt), kind: 'status', label: 'stopping' });
    if (task.stoppedAt) {
      const oom = /^OutOfMemoryError/.test(task.stoppedReason ?? '');
      if (oom && !markers.some((m) => m.kind === 'oom')) markers.push({ t: at(task.stoppedAt), kind: 'oom', label: 'OOM kill' });
      markers.push({ t: at(task.stoppedAt), kind: 'status', label: 'stopped' });
    }
  }
  return markers;
}

function markerPlugin(getMarkers) {
  return {
    hooks: {
      draw: [(u) => {
        const ratio = window.devicePixelRatio || 1;
        const { ctx } = u;
        const { left, top, width, height } = u.bbox;
        let labelEnd = -Infinity;
        for (const m of [...getMarkers()].sort((a, b) => a.t - b.t)) {
          const x = Math.round(u.valToPos(m.t, 'x', true));
          if (x < left || x > left + width) continue;
          ctx.save();
          ctx.strokeStyle = MARKER_COLOURS[m.kind] ?? '#333';
          ctx.fillStyle = ctx.strokeStyle;
          ctx.lineWidth = (m.kind === 'status' ? 1 : 2) * ratio;
          if (m.kind === 'status') ctx.setLineDash([4 * ratio, 4 * ratio]);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          // Labels that would overlap the previous one are left out; the line stays.
          ctx.font = `${11 * ratio}px system-ui, sans-serif`;
          if (x >= labelEnd) {
            ctx.fillText(m.label, x + 3 * ratio, top + 12 * ratio);
            labelEnd = x + 3 * ratio + ctx.measureText(m.label).width + 4 * ratio;
          }
          ctx.restore();
        }
      }],
    },
  };
}

function percent(_u, values) {
  return values.map((v) => (v == null ? '' : `${+v.toFixed(1)} %`));
}

function mebibytes(_u, values) {
  return values.map((v) => (v == null ? '' : `${+v.toFixed(1)} MiB`));
}

export class TaskCharts {
  constructor(cpuEl, memEl) {
    this.markers = [];
    this.now = Date.now() / 1000;
    this.windowS = WINDOW_S;
    const width = Math.max(300, cpuEl.clientWidth || 600);
    const x = { time: true, range: () => [this.now - this.windowS, this.now] };
    const plugins = [markerPlugin(() => this.markers)];
    this.cpu = new uPlot({
      title: 'CPU',
      width, height: HEIGHT, plugins,
      scales: { x, y: { range: (_u, _min, max) => [0, Math.max(10, (max ?? 0) * 1.1)] } },
      axes: [{}, { values: percent, size: 60 }],
      series: [
        {},
        { label: '% of a vCPU', stroke: '#1f77b4', fill: 'rgba(31,119,180,0.12)', width: 1.5, value: (_u, v) => (v == null ? '–' : `${v.toFixed(1)} %`) },
        { label: '% of its limit', stroke: '#ff7f0e', width: 1.5, value: (_u, v) => (v == null ? '–' : `${v.toFixed(1)} %`) },
      ],
    }, [[], [], []], cpuEl);
    this.mem = new uPlot({
      title: 'Memory',
      width, height: HEIGHT, plugins,
      scales: { x, y: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 0) * 1.05)] } },
      axes: [{}, { values: mebibytes, size: 70 }],
      series: [
        {},
        { label: 'used', stroke: '#2ca02c', fill: 'rgba(44,160,44,0.12)', width: 1.5, value: (_u, v) => (v == null ? '–' : `${v.toFixed(1)} MiB`) },
        { label: 'peak', stroke: '#8c564b', width: 1, dash: [6, 3], value: (_u, v) => (v == null ? '–' : `${v.toFixed(1)} MiB`) },
        { label: 'limit', stroke: '#d62728', width: 1, value: (_u, v) => (v == null ? '–' : `${v.toFixed(1)} MiB`) },
      ],
    }, [[], [], [], []], memEl);
  }

  /** samples: oldest first. */
  update(task, samples, now = Date.now() / 1000) {
    this.now = now;
    const from = now - this.windowS;
    const shown = samples.filter((s) => Date.parse(s.time) / 1000 >= from);
    const xs = shown.map((s) => Date.parse(s.time) / 1000);
    this.markers = markersFor(task, samples);
    this.cpu.setData([xs, shown.map((s) => s.cpuPercent ?? null), shown.map((s) => s.cpuLimitPercent ?? null)]);
    this.mem.setData([
      xs,
      shown.map((s) => (s.memoryBytes == null ? null : s.memoryBytes / MIB)),
      shown.map((s) => (s.memoryPeakBytes == null ? null : s.memoryPeakBytes / MIB)),
      shown.map((s) => (s.memoryLimitBytes == null ? null : s.memoryLimitBytes / MIB)),
    ]);
  }

  /** Shows the last `seconds` (at most the 15 minutes kept). */
  setWindow(seconds) {
    this.windowS = Math.min(WINDOW_S, Math.max(30, seconds));
  }

  resize(width) {
    const w = Math.max(300, width);
    this.cpu.setSize({ width: w, height: HEIGHT });
    this.mem.setSize({ width: w, height: HEIGHT });
  }

  destroy() {
    this.cpu.destroy();
    this.mem.destroy();
  }
}
