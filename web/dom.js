// Small DOM and formatting helpers shared by every page.

/** Makes an element: h("a", {href: "#/x", class: "button"}, "text", child). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "value") {
      element.value = value;
    } else if (key === "checked") {
      element.checked = Boolean(value);
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `element`. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/** `name="value"` chips for a label set, sorted by name. */
export function labelChips(labels, onClick) {
  return Object.keys(labels || {}).sort().map((name) =>
    h("span", {
      class: onClick ? "label clickable" : "label",
      title: onClick ? "Add to the filter" : undefined,
      onclick: onClick ? () => onClick(name, labels[name]) : undefined,
    }, `${name}="${labels[name]}"`));
}

export function badge(text) {
  return h("span", { class: `badge ${text}` }, text);
}

/** A table from header names and rows of cells. */
export function table(headers, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", {}, name)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) =>
      cell instanceof Node && cell.tagName === "TD" ? cell : h("td", {}, cell))))));
}

/** A duration in seconds as Prometheus writes them: 1h2m3s, 250ms. */
export function formatSeconds(seconds) {
  if (!Number.isFinite(seconds)) return String(seconds);
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  let rest = Math.round(seconds);
  const units = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  let out = "";
  for (const [unit, size] of units) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out || "0s";
}

/** Prometheus durations: 1w2d3h4m5s6ms (and y), in milliseconds; null if malformed. */
export function parseDuration(text) {
  const units = { y: 31536000000, w: 604800000, d: 86400000, h: 3600000, m: 60000, s: 1000, ms: 1 };
  const trimmed = String(text).trim();
  if (!/^(\d+(ms|y|w|d|h|m|s))+$/.test(trimmed)) return null;
  let total = 0;
  for (const [, amount, unit] of trimmed.matchAll(/(\d+)(ms|y|w|d|h|m|s)/g)) {
    total += Number(amount) * units[unit];
  }
  return total;
}

/** "3m ago" / "in 2h" for an RFC 3339 time or epoch milliseconds. */
export function relative(time) {
  const at = typeof time === "number" ? time : Date.parse(time);
  if (!Number.isFinite(at) || at <= 0) return "never";
  const delta = (Date.now() - at) / 1000;
  return delta >= 0 ? `${formatSeconds(delta)} ago` : `in ${formatSeconds(-delta)}`;
}

/** An RFC 3339 time shown in local time, with the exact UTC time on hover. */
export function timeCell(time) {
  const at = Date.parse(time);
  if (!Number.isFinite(at) || at <= 0) return h("span", { class: "muted" }, "never");
  return h("span", { title: new Date(at).toISOString() }, `${new Date(at).toLocaleString()} (${relative(at)})`);
}

/** The `?a=b` part of the current hash route, as URLSearchParams. */
export function hashParams() {
  const hash = location.hash.slice(1);
  const index = hash.indexOf("?");
  return new URLSearchParams(index < 0 ? "" : hash.slice(index + 1));
}

/** Replaces the current hash route's parameters without adding a history entry or re-rendering. */
export function setHashParams(page, params) {
  const query = new URLSearchParams(params).toString();
  history.replaceState(null, "", `#/${page}${query ? `?${query}` : ""}`);
}
