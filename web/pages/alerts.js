// Alerts as the routing tree groups them (/api/v2/alerts/groups), filtered by matchers and state.

import { h, replace, labelChips, badge, relative, setHashParams } from "../dom.js";
import { get } from "../api.js";
import { parseMatchers, formatMatcher, formatMatchers, matchersForLabels } from "../matchers.js";

/** active, silenced or inhibited, as Alertmanager's UI tells them apart. */
export function alertState(alert) {
  if (alert.status.silencedBy.length) return "silenced";
  if (alert.status.inhibitedBy.length) return "inhibited";
  return alert.status.state;
}

export async function render(view, params, stillCurrent) {
  const filter = params.get("filter") || "";
  const show = {
    active: params.get("active") !== "false",
    silenced: params.get("silenced") !== "false",
    inhibited: params.get("inhibited") !== "false",
  };
  const reload = () => {
    const next = { filter: filterInput.value.trim() };
    for (const [state, box] of Object.entries(boxes)) if (!box.checked) next[state] = "false";
    setHashParams("alerts", Object.fromEntries(Object.entries(next).filter(([, v]) => v)));
    load();
  };
  const filterInput = h("input", {
    type: "text", id: "alert-filter", class: "wide", value: filter,
    placeholder: '{alertname="HighLatency", severity=~"critical|page"}',
    onkeydown: (event) => { if (event.key === "Enter") reload(); },
  });
  const boxes = {};
  for (const state of Object.keys(show)) {
    boxes[state] = h("input", { type: "checkbox", id: `show-${state}`, checked: show[state], onchange: reload });
  }
  const results = h("div", { id: "alert-groups" });
  replace(view,
    h("h1", {}, "Alerts"),
    h("div", { class: "toolbar" },
      filterInput,
      h("button", { id: "alert-filter-apply", onclick: reload }, "Filter"),
      Object.entries(boxes).map(([state, box]) => h("label", {}, box, ` ${state}`)),
      h("a", { class: "button secondary", href: "#/silences/new" }, "New silence")),
    results);

  const addToFilter = (name, value) => {
    let current = [];
    try {
      current = filterInput.value.trim() ? parseMatchers(filterInput.value) : [];
    } catch {
      current = [];
    }
    current = current.filter((matcher) => matcher.name !== name);
    current.push({ name, value, isRegex: false, isEqual: true });
    filterInput.value = formatMatchers(current);
    reload();
  };

  async function load() {
    let matchers;
    try {
      matchers = filterInput.value.trim() ? parseMatchers(filterInput.value) : [];
    } catch (error) {
      replace(results, h("p", { class: "error" }, error.message));
      return;
    }
    const query = matchers.map((matcher) => ["filter", formatMatcher(matcher)]);
    for (const [state, box] of Object.entries(boxes)) query.push([state, String(box.checked)]);
    const groups = await get("/api/v2/alerts/groups", query);
    if (!stillCurrent()) return;
    if (!groups.length) {
      replace(results, h("p", { class: "muted" }, "No alerts match."));
      return;
    }
    replace(results, groups.map((group) => groupCard(group, addToFilter)));
  }
  await load();
}

function groupCard(group, addToFilter) {
  return h("section", { class: "card alert-group", "data-receiver": group.receiver.name },
    h("h3", {},
      Object.keys(group.labels).length ? labelChips(group.labels, addToFilter) : h("span", { class: "muted" }, "(not grouped)"),
      h("span", { class: "muted" }, `→ ${group.receiver.name} · ${group.alerts.length} alert${group.alerts.length === 1 ? "" : "s"}`)),
    group.alerts.map((alert) => alertRow(alert, addToFilter)));
}

function alertRow(alert, addToFilter) {
  const state = alertState(alert);
  const silenceLink = `#/silences/new?matchers=${encodeURIComponent(formatMatchers(matchersForLabels(alert.labels)))}`;
  const annotations = Object.entries(alert.annotations || {});
  return h("div", { class: "alert", "data-fingerprint": alert.fingerprint, "data-state": state },
    badge(state),
    h("span", { class: "muted", title: alert.startsAt }, `since ${relative(alert.startsAt)}`),
    labelChips(alert.labels, addToFilter),
    alert.status.silencedBy.map((id) => h("a", { href: `#/silences/edit?id=${encodeURIComponent(id)}`, class: "muted" }, "silence")),
    h("a", { href: silenceLink, class: "silence-this" }, "Silence this"),
    alert.generatorURL ? h("a", { href: alert.generatorURL, class: "muted" }, "source") : null,
    annotations.length ? h("div", { class: "annotations" },
      annotations.map(([name, value]) => h("div", {}, h("b", {}, `${name}: `), value))) : null);
}
