// The router: hash routes (#/alerts, #/silences, #/query, …) rendered into <main id="view">.
// Each page module exports render(view, params) and may return a cleanup function.

import { h, replace } from "./dom.js";
import * as alerts from "./pages/alerts.js";
import * as silences from "./pages/silences.js";
import * as query from "./pages/query.js";
import * as status from "./pages/status.js";

const PAGES = {
  alerts: { title: "Alerts", render: alerts.render },
  silences: { title: "Silences", render: silences.renderList },
  "silences/new": { title: "New silence", nav: "silences", render: silences.renderForm },
  "silences/edit": { title: "Edit silence", nav: "silences", render: silences.renderForm },
  query: { title: "Query", render: query.render },
  targets: { title: "Targets", render: status.renderTargets },
  rules: { title: "Rules", render: status.renderRules },
  status: { title: "Status", render: status.renderStatus },
};

const view = document.getElementById("view");
let cleanup = null;
// Every render gets a number; a slow page that finishes after the user moved on is ignored.
let generation = 0;

export function isCurrent(number) {
  return number === generation;
}

async function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = hash.split("?");
  const name = path || "alerts";
  const page = PAGES[name];
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const number = ++generation;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", link.dataset.page === (page ? page.nav || name : ""));
  }
  if (!page) {
    replace(view, h("h1", {}, "Not found"), h("p", {}, `No page named "${name}". `, h("a", { href: "#/alerts" }, "Go to alerts.")));
    return;
  }
  document.title = `${page.title} · Tocsin`;
  replace(view, h("p", { class: "muted" }, "Loading…"));
  try {
    const result = await page.render(view, new URLSearchParams(search), () => isCurrent(number));
    if (typeof result === "function") cleanup = result;
  } catch (error) {
    // A failed API call is shown on the page and logged, so tests and users both see it.
    console.error(error);
    if (isCurrent(number)) replace(view, h("h1", {}, page.title), h("p", { class: "error" }, String(error.message || error)));
  }
}

window.addEventListener("hashchange", route);
if (!location.hash) history.replaceState(null, "", "#/alerts");
route();
