// A small time-series line chart on a canvas: axes with round ticks, one line per series, and a
// crosshair that shows every series' value at the nearest step. No dependencies.

const PALETTE = ["#2b6cb0", "#c53030", "#2f855a", "#b7791f", "#6b46c1", "#00838f", "#d53f8c", "#4a5568",
  "#dd6b20", "#38a169", "#3182ce", "#805ad5"];

export function colorOf(index) {
  return PALETTE[index % PALETTE.length];
}

/** Round tick values covering [low, high], about `count` of them. */
function niceTicks(low, high, count) {
  if (low === high) {
    const pad = Math.abs(low) * 0.1 || 1;
    low -= pad;
    high += pad;
  }
  const raw = (high - low) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const first = Math.floor(low / step) * step;
  const ticks = [];
  for (let value = first; value <= high + step * 0.5; value += step) ticks.push(Number(value.toPrecision(12)));
  return { ticks, low: ticks[0], high: ticks[ticks.length - 1], step };
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800];

function timeTicks(start, end, count) {
  const raw = (end - start) / count;
  const step = TIME_STEPS.find((s) => s >= raw) || Math.ceil(raw / 86400) * 86400;
  const offset = new Date().getTimezoneOffset() * 60;
  const ticks = [];
  // Align on local midnight-based multiples so labels read 10:00, 10:05, …
  for (let t = Math.ceil((start - offset) / step) * step + offset; t <= end; t += step) ticks.push(t);
  return { ticks, step };
}

function formatTime(seconds, step) {
  const date = new Date(seconds * 1000);
  const two = (n) => String(n).padStart(2, "0");
  const clock = `${two(date.getHours())}:${two(date.getMinutes())}${step < 60 ? `:${two(date.getSeconds())}` : ""}`;
  return step >= 86400 ? `${date.getMonth() + 1}/${date.getDate()}` : step >= 21600 ? `${date.getMonth() + 1}/${date.getDate()} ${clock}` : clock;
}

export function formatValue(value) {
  if (!Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude >= 1e6 || magnitude < 1e-3)) return value.toExponential(2);
  return String(Number(value.toPrecision(6)));
}

/**
 * Draws `series` ([{name, color, points: [[seconds, value], …]}]) over [start, end] (seconds)
 * into `canvas`, and shows values under the pointer in `tooltip`. Returns the number of series
 * drawn (also left on the canvas as data-series for tests and tools).
 */
export function drawChart(canvas, tooltip, series, start, end) {
  const style = getComputedStyle(document.documentElement);
  const fg = style.getPropertyValue("--fg").trim() || "#000";
  const line = style.getPropertyValue("--line").trim() || "#ccc";
  const width = canvas.clientWidth || 800;
  const height = canvas.clientHeight || 360;
  const scale = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const context = canvas.getContext("2d");

  const values = series.flatMap((s) => s.points.map(([, v]) => v)).filter(Number.isFinite);
  const y = niceTicks(values.length ? Math.min(...values) : 0, values.length ? Math.max(...values) : 1, 6);
  const yLabels = y.ticks.map(formatValue);
  context.font = "12px system-ui, sans-serif";
  const left = Math.max(...yLabels.map((label) => context.measureText(label).width)) + 14;
  const plot = { left, top: 10, right: width - 12, bottom: height - 26 };
  const xOf = (t) => plot.left + ((t - start) / (end - start || 1)) * (plot.right - plot.left);
  const yOf = (v) => plot.bottom - ((v - y.low) / (y.high - y.low || 1)) * (plot.bottom - plot.top);

  function render(hoverTime) {
    context.setTransform(scale, 0, 0, scale, 0, 0);
    context.clearRect(0, 0, width, height);
    context.font = "12px system-ui, sans-serif";
    context.lineWidth = 1;
    context.strokeStyle = line;
    context.fillStyle = fg;
    context.textAlign = "right";
    context.textBaseline = "middle";
    y.ticks.forEach((tick, index) => {
      const at = Math.round(yOf(tick)) + 0.5;
      context.beginPath();
      context.moveTo(plot.left, at);
      context.lineTo(plot.right, at);
      context.stroke();
      context.fillText(yLabels[index], plot.left - 6, at);
    });
    const x = timeTicks(start, end, Math.max(2, Math.floor((plot.right - plot.left) / 90)));
    context.textAlign = "center";
    context.textBaseline = "top";
    for (const tick of x.ticks) {
      const at = Math.round(xOf(tick)) + 0.5;
      context.beginPath();
      context.moveTo(at, plot.top);
      context.lineTo(at, plot.bottom + 4);
      context.stroke();
      context.fillText(formatTime(tick, x.step), at, plot.bottom + 7);
    }
    context.save();
    context.beginPath();
    context.rect(plot.left, plot.top, plot.right - plot.left, plot.bottom - plot.top);
    context.clip();
    context.lineWidth = 1.6;
    for (const s of series) {
      context.strokeStyle = s.color;
      context.fillStyle = s.color;
      context.beginPath();
      let drawing = false;
      let previous = null;
      for (const [t, v] of s.points) {
        // A gap of more than two steps (or a non-number) breaks the line, as Prometheus's graph does.
        const gap = previous !== null && t - previous > 2 * (s.step || Infinity);
        if (!Number.isFinite(v) || gap) drawing = false;
        if (Number.isFinite(v)) {
          if (drawing) context.lineTo(xOf(t), yOf(v));
          else context.moveTo(xOf(t), yOf(v));
          drawing = true;
        }
        previous = t;
      }
      context.stroke();
      if (s.points.length === 1 && Number.isFinite(s.points[0][1])) {
        context.beginPath();
        context.arc(xOf(s.points[0][0]), yOf(s.points[0][1]), 3, 0, 2 * Math.PI);
        context.fill();
      }
    }
    context.restore();
    if (hoverTime !== undefined) {
      const at = Math.round(xOf(hoverTime)) + 0.5;
      context.strokeStyle = fg;
      context.lineWidth = 1;
      context.beginPath();
      context.moveTo(at, plot.top);
      context.lineTo(at, plot.bottom);
      context.stroke();
    }
  }

  render();
  canvas.dataset.series = String(series.length);
  canvas.onmouseleave = () => {
    tooltip.hidden = true;
    render();
  };
  canvas.onmousemove = (event) => {
    const box = canvas.getBoundingClientRect();
    const px = event.clientX - box.left;
    if (px < plot.left || px > plot.right) return;
    const time = start + ((px - plot.left) / (plot.right - plot.left)) * (end - start);
    let nearest;
    const rows = [];
    for (const s of series) {
      let best;
      for (const point of s.points) {
        if (!best || Math.abs(point[0] - time) < Math.abs(best[0] - time)) best = point;
      }
      if (best && (nearest === undefined || Math.abs(best[0] - time) < Math.abs(nearest - time))) nearest = best[0];
      if (best) rows.push([s, best]);
    }
    if (nearest === undefined) return;
    render(nearest);
    tooltip.replaceChildren();
    const title = document.createElement("div");
    title.textContent = new Date(nearest * 1000).toLocaleString();
    tooltip.append(title);
    for (const [s, [, v]] of rows.filter(([, [t]]) => t === nearest).slice(0, 20)) {
      const row = document.createElement("div");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.display = "inline-block";
      swatch.style.background = s.color;
      row.append(swatch, ` ${s.name}: ${formatValue(v)}`);
      tooltip.append(row);
    }
    tooltip.hidden = false;
    const wrapBox = tooltip.parentElement.getBoundingClientRect();
    const tipLeft = event.clientX - wrapBox.left + 14;
    tooltip.style.left = `${Math.min(tipLeft, wrapBox.width - tooltip.offsetWidth - 4)}px`;
    tooltip.style.top = `${event.clientY - wrapBox.top + 14}px`;
  };
  return series.length;
}
