// PromQL: an expression box, the instant result as a table (/api/v1/query) and the result over
// time as a chart (/api/v1/query_range).

import { h, replace, table, setHashParams, formatSeconds, parseDuration } from "../dom.js";
import { get } from "../api.js";
import { drawChart, colorOf, formatValue } from "../chart.js";

const RANGES = ["5m", "15m", "30m", "1h", "3h", "6h", "12h", "1d", "2d", "1w"];
/** Points a graph aims for across its range; Prometheus's own graph uses a similar resolution. */
const TARGET_POINTS = 250;
const MAX_LEGEND = 50;

/** `name{a="b"}`, as Prometheus prints a series. */
export function seriesName(metric) {
  const { __name__: name = "", ...labels } = metric || {};
  const pairs = Object.keys(labels).sort().map((key) => `${key}=${JSON.stringify(labels[key])}`);
  return `${name}{${pairs.join(", ")}}`;
}

export async function render(view, params, stillCurrent) {
  const tab = params.get("tab") === "table" ? "table" : "graph";
  const range = RANGES.includes(params.get("range")) ? params.get("range") : "1h";
  const expression = h("textarea", { id: "expr", class: "wide", rows: 2, spellcheck: "false", placeholder: "Expression, e.g. rate(prometheus_http_requests_total[5m])" }, params.get("expr") || "");
  const rangeSelect = h("select", { id: "range", title: "Graph range, ending now" },
    RANGES.map((value) => h("option", { value, selected: value === range }, value)));
  const output = h("div", { id: "query-output" });
  const stats = h("span", { class: "muted", id: "query-stats" });
  let current = tab;

  const tabLink = (name) => h("a", { href: "#", "data-tab": name, class: name === current ? "current" : "", onclick: (event) => {
    event.preventDefault();
    current = name;
    for (const link of tabs.querySelectorAll("a")) link.classList.toggle("current", link.dataset.tab === current);
    execute();
  } }, name === "graph" ? "Graph" : "Table");
  const tabs = h("div", { class: "tabs" }, tabLink("graph"), tabLink("table"));

  async function execute() {
    const expr = expression.value.trim();
    setHashParams("query", Object.fromEntries(Object.entries({ expr, tab: current, range: rangeSelect.value }).filter(([, v]) => v)));
    if (!expr) {
      replace(output, h("p", { class: "muted" }, "Enter an expression and press Execute (or Shift+Enter)."));
      return;
    }
    replace(output, h("p", { class: "muted" }, "Running…"));
    const started = performance.now();
    try {
      if (current === "table") {
        const data = await get("/api/v1/query", [["query", expr]]);
        if (!stillCurrent()) return;
        replace(output, resultTable(data));
      } else {
        const seconds = parseDuration(rangeSelect.value) / 1000;
        const end = Math.floor(Date.now() / 1000);
        const start = end - seconds;
        const step = Math.max(1, Math.ceil(seconds / TARGET_POINTS));
        const data = await get("/api/v1/query_range", [["query", expr], ["start", start], ["end", end], ["step", step]]);
        if (!stillCurrent()) return;
        graph(output, data, start, end, step);
      }
      stats.textContent = `took ${formatSeconds((performance.now() - started) / 1000)}`;
    } catch (error) {
      replace(output, h("p", { class: "error", id: "query-error" }, error.message));
    }
  }

  expression.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.shiftKey || event.ctrlKey)) {
      event.preventDefault();
      execute();
    }
  });
  rangeSelect.addEventListener("change", () => { if (current === "graph") execute(); });
  replace(view,
    h("h1", {}, "Query"),
    h("div", { class: "toolbar" }, expression),
    h("div", { class: "toolbar" }, h("button", { id: "execute", onclick: execute }, "Execute"), h("label", {}, "Range ", rangeSelect), stats),
    tabs,
    output);
  await execute();
  let resizeTimer = null;
  const onResize = () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (current === "graph" && expression.value.trim()) execute(); }, 250);
  };
  window.addEventListener("resize", onResize);
  return () => window.removeEventListener("resize", onResize);
}

function resultTable(data) {
  switch (data.resultType) {
    case "vector":
      if (!data.result.length) return h("p", { class: "muted" }, "Empty result.");
      return table(["Series", "Value"], data.result.map((sample) =>
        [h("td", { class: "mono" }, seriesName(sample.metric)), h("td", { class: "num" }, sample.value[1])]));
    case "matrix":
      if (!data.result.length) return h("p", { class: "muted" }, "Empty result.");
      return table(["Series", "Values"], data.result.map((series) =>
        [h("td", { class: "mono" }, seriesName(series.metric)),
          h("td", { class: "mono" }, series.values.map(([t, v]) => h("div", {}, `${v} @${t}`)))]));
    case "scalar":
    case "string":
      return table(["Type", "Value"], [[data.resultType, h("td", { class: "mono" }, data.result[1])]]);
    default:
      return h("p", { class: "error" }, `Unknown result type ${data.resultType}`);
  }
}

function graph(output, data, start, end, step) {
  if (data.resultType !== "matrix") {
    replace(output, h("p", { class: "error" }, `A graph needs a range of vectors, the query gave a ${data.resultType}.`));
    return;
  }
  if (!data.result.length) {
    replace(output, h("p", { class: "muted" }, "Empty result: nothing to draw."));
    return;
  }
  const series = data.result.map((entry, index) => ({
    name: seriesName(entry.metric),
    color: colorOf(index),
    step,
    points: entry.values.map(([t, v]) => [Number(t), Number(v)]),
  }));
  const canvas = h("canvas", { id: "graph", role: "img", "aria-label": "Query result over time" });
  const tooltip = h("div", { class: "tooltip", hidden: true });
  const legend = h("div", { class: "legend", id: "legend" },
    series.slice(0, MAX_LEGEND).map((s) => {
      const last = s.points[s.points.length - 1];
      return h("div", {}, h("span", { class: "swatch", style: `background:${s.color}` }), h("span", { class: "mono" }, s.name),
        last ? h("span", { class: "muted" }, ` ${formatValue(last[1])}`) : null);
    }),
    series.length > MAX_LEGEND ? h("div", { class: "muted" }, `… and ${series.length - MAX_LEGEND} more series`) : null);
  replace(output, h("div", { class: "chart-wrap" }, canvas, tooltip), legend);
  drawChart(canvas, tooltip, series, start, end);
}
