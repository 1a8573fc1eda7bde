// Silences: the list by state, and the form that creates or edits one, with a preview of the
// alerts it would mute.

import { h, replace, badge, timeCell, parseDuration, formatSeconds } from "../dom.js";
import { get, send } from "../api.js";
import { parseMatchers, formatMatcher, formatMatchers, operatorOf } from "../matchers.js";
import { alertState } from "./alerts.js";

const STATES = ["active", "pending", "expired"];

function matcherChips(matchers) {
  return matchers.map((matcher) => h("span", { class: "label" },
    `${matcher.name}${operatorOf(matcher)}"${matcher.value}"`));
}

export async function renderList(view, params, stillCurrent) {
  const state = STATES.includes(params.get("state")) ? params.get("state") : "active";
  const created = params.get("created");
  const expired = params.get("expired");
  const all = await get("/api/v2/silences");
  if (!stillCurrent()) return;
  const counts = Object.fromEntries(STATES.map((name) => [name, all.filter((s) => s.status.state === name).length]));
  const shown = all.filter((silence) => silence.status.state === state);
  replace(view,
    h("h1", {}, "Silences"),
    created ? h("p", { class: "notice", id: "silence-created" }, `Saved silence ${created}.`) : null,
    expired ? h("p", { class: "notice", id: "silence-expired" }, `Expired silence ${expired}.`) : null,
    h("div", { class: "toolbar" }, h("a", { class: "button", href: "#/silences/new", id: "new-silence" }, "New silence")),
    h("div", { class: "tabs" }, STATES.map((name) =>
      h("a", { href: `#/silences?state=${name}`, class: name === state ? "current" : "", "data-state": name }, `${name} (${counts[name]})`))),
    shown.length ? shown.map(silenceCard) : h("p", { class: "muted" }, `No ${state} silences.`));
}

function silenceCard(silence) {
  const expire = h("button", { class: "danger expire", "data-id": silence.id }, "Expire");
  let armed = false;
  // Two clicks, so a stray one does not lift a silence; no confirm() dialog, which blocks tabs.
  expire.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      expire.textContent = "Click again to expire";
      return;
    }
    expire.disabled = true;
    try {
      await send("DELETE", `/api/v2/silence/${encodeURIComponent(silence.id)}`);
      location.hash = `#/silences?state=expired&expired=${encodeURIComponent(silence.id)}`;
    } catch (error) {
      expire.disabled = false;
      expire.after(h("span", { class: "error" }, ` ${error.message}`));
    }
  });
  return h("section", { class: "card silence", "data-id": silence.id, "data-state": silence.status.state },
    h("h3", {}, badge(silence.status.state), matcherChips(silence.matchers)),
    h("div", {}, h("b", {}, "Starts "), timeCell(silence.startsAt), h("b", {}, " · Ends "), timeCell(silence.endsAt)),
    h("div", {}, h("b", {}, "By "), silence.createdBy, h("span", { class: "muted" }, ` · ${silence.comment}`)),
    h("div", { class: "toolbar", style: "margin: 6px 0 0" },
      h("a", { class: "button secondary edit", href: `#/silences/edit?id=${encodeURIComponent(silence.id)}` },
        silence.status.state === "expired" ? "Recreate" : "Edit"),
      silence.status.state === "expired" ? null : expire,
      h("span", { class: "muted mono" }, silence.id)));
}

function isoNow() {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

export async function renderForm(view, params, stillCurrent) {
  const id = params.get("id");
  let existing = null;
  if (id) {
    existing = await get(`/api/v2/silence/${encodeURIComponent(id)}`);
    if (!stillCurrent()) return;
  }
  // Recreating an expired silence starts a new one now with the same matchers and length.
  const reuse = existing && existing.status.state !== "expired";
  const startsAt = reuse ? existing.startsAt : isoNow();
  const lengthMs = existing ? Date.parse(existing.endsAt) - Date.parse(existing.startsAt) : 2 * 3600 * 1000;
  const field = (name, attributes) => h("input", { type: "text", id: `silence-${name}`, name, class: "wide", ...attributes });
  const matchers = field("matchers", {
    value: existing ? formatMatchers(existing.matchers) : params.get("matchers") || "",
    placeholder: '{alertname="Watchdog", instance=~"db-.*"}',
  });
  const start = field("start", { value: startsAt });
  const duration = field("duration", { value: formatSeconds(Math.max(lengthMs, 1000) / 1000) });
  const end = field("end", { value: new Date(Date.parse(startsAt) + lengthMs).toISOString().replace(/\.\d+Z$/, "Z") });
  const creator = field("creator", { value: existing ? existing.createdBy : localStorage.getItem("tocsin.creator") || "" });
  const comment = h("textarea", { id: "silence-comment", name: "comment", class: "wide", rows: 3 }, existing ? existing.comment : "");
  const problem = h("p", { class: "error", id: "silence-error" });
  const preview = h("div", { id: "silence-preview" });
  const submit = h("button", { type: "submit", id: "silence-submit" }, reuse ? "Update silence" : "Create silence");

  // Start, duration and end stay consistent: editing the duration moves the end, and the other way.
  const syncEnd = () => {
    const ms = parseDuration(duration.value);
    const at = Date.parse(start.value);
    if (ms !== null && Number.isFinite(at)) end.value = new Date(at + ms).toISOString().replace(/\.\d+Z$/, "Z");
  };
  const syncDuration = () => {
    const from = Date.parse(start.value);
    const to = Date.parse(end.value);
    if (Number.isFinite(from) && Number.isFinite(to) && to > from) duration.value = formatSeconds((to - from) / 1000);
  };
  start.addEventListener("input", syncEnd);
  duration.addEventListener("input", syncEnd);
  end.addEventListener("input", syncDuration);

  let previewTimer = null;
  let previewNumber = 0;
  async function showPreview() {
    const number = ++previewNumber;
    let parsed;
    try {
      parsed = parseMatchers(matchers.value);
    } catch (error) {
      replace(preview, h("span", { class: "error" }, error.message));
      return;
    }
    if (!parsed.length) {
      replace(preview, h("span", { class: "muted" }, "Type matchers to see the alerts they would silence."));
      return;
    }
    try {
      const alerts = await get("/api/v2/alerts", parsed.map((matcher) => ["filter", formatMatcher(matcher)]));
      if (number !== previewNumber || !stillCurrent()) return;
      replace(preview,
        h("p", { id: "silence-preview-count" }, `${alerts.length} alert${alerts.length === 1 ? "" : "s"} would be silenced now.`),
        alerts.slice(0, 50).map((alert) => h("div", { class: "alert", "data-fingerprint": alert.fingerprint },
          badge(alertState(alert)),
          Object.keys(alert.labels).sort().map((name) => h("span", { class: "label" }, `${name}="${alert.labels[name]}"`)))),
        alerts.length > 50 ? h("p", { class: "muted" }, `… and ${alerts.length - 50} more.`) : null);
    } catch (error) {
      if (number === previewNumber) replace(preview, h("span", { class: "error" }, error.message));
    }
  }
  matchers.addEventListener("input", () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(showPreview, 300);
  });

  async function save(event) {
    event.preventDefault();
    problem.textContent = "";
    let body;
    try {
      const parsed = parseMatchers(matchers.value);
      if (!parsed.length) throw new Error("matchers: at least one is needed");
      for (const [what, input] of [["start", start], ["end", end]]) {
        if (!Number.isFinite(Date.parse(input.value))) throw new Error(`${what}: not a time (use RFC 3339, e.g. 2024-05-01T12:00:00Z)`);
      }
      body = {
        matchers: parsed,
        startsAt: new Date(Date.parse(start.value)).toISOString(),
        endsAt: new Date(Date.parse(end.value)).toISOString(),
        createdBy: creator.value.trim(),
        comment: comment.value.trim(),
      };
      if (reuse) body.id = existing.id;
    } catch (error) {
      problem.textContent = error.message;
      return;
    }
    submit.disabled = true;
    try {
      const answer = await send("POST", "/api/v2/silences", body);
      localStorage.setItem("tocsin.creator", body.createdBy);
      const state = Date.parse(body.startsAt) > Date.now() ? "pending" : "active";
      location.hash = `#/silences?state=${state}&created=${encodeURIComponent(answer.silenceID)}`;
    } catch (error) {
      problem.textContent = error.message;
      submit.disabled = false;
    }
  }

  replace(view,
    h("h1", {}, reuse ? "Edit silence" : "New silence"),
    h("form", { class: "grid", id: "silence-form", onsubmit: save },
      h("label", { for: "silence-matchers" }, "Matchers"), matchers,
      h("label", { for: "silence-start" }, "Start"), start,
      h("label", { for: "silence-duration" }, "Duration"), duration,
      h("label", { for: "silence-end" }, "End"), end,
      h("label", { for: "silence-creator" }, "Creator"), creator,
      h("label", { for: "silence-comment" }, "Comment"), comment,
      h("span"), h("div", {}, submit, " ", h("a", { href: "#/silences" }, "Cancel")),
      h("span"), problem),
    h("h2", {}, "Affected alerts"),
    preview);
  await showPreview();
  return () => clearTimeout(previewTimer);
}
