// Targets, rules, and the node's status (build, runtime, cluster, flags, configuration).

import { h, replace, table, badge, relative, formatSeconds, timeCell, labelChips } from "../dom.js";
import { get } from "../api.js";

export async function renderTargets(view, params, stillCurrent) {
  const data = await get("/api/v1/targets", [["state", "active"]]);
  if (!stillCurrent()) return;
  const onlyUnhealthy = params.get("unhealthy") === "true";
  const pools = new Map();
  for (const target of data.activeTargets) {
    if (!pools.has(target.scrapePool)) pools.set(target.scrapePool, []);
    pools.get(target.scrapePool).push(target);
  }
  const box = h("input", { type: "checkbox", checked: onlyUnhealthy, onchange: () => {
    location.hash = box.checked ? "#/targets?unhealthy=true" : "#/targets";
  } });
  replace(view,
    h("h1", {}, "Targets"),
    h("div", { class: "toolbar" }, h("label", {}, box, " only unhealthy")),
    pools.size ? null : h("p", { class: "muted" }, "No scrape targets."),
    [...pools.keys()].sort().map((pool) => {
      const targets = pools.get(pool);
      const up = targets.filter((target) => target.health === "up").length;
      const shown = onlyUnhealthy ? targets.filter((target) => target.health !== "up") : targets;
      return h("section", { class: "card target-pool", "data-pool": pool },
        h("h3", {}, pool, h("span", { class: "muted" }, `${up}/${targets.length} up`)),
        shown.length ? table(["Endpoint", "State", "Labels", "Last scrape", "Duration", "Error"], shown.map((target) => [
          h("a", { href: target.scrapeUrl, class: "mono" }, target.scrapeUrl),
          badge(target.health),
          labelChips(target.labels),
          target.lastScrape.startsWith("0001-") ? "never" : relative(target.lastScrape),
          formatSeconds(target.lastScrapeDuration),
          h("span", { class: "error" }, target.lastError),
        ])) : h("p", { class: "muted" }, "All up."));
    }));
}

export async function renderRules(view, params, stillCurrent) {
  const data = await get("/api/v1/rules");
  if (!stillCurrent()) return;
  replace(view,
    h("h1", {}, "Rules"),
    data.groups.length ? null : h("p", { class: "muted" }, "No rule groups: add rule_files to the configuration."),
    data.groups.map((group) => h("section", { class: "card rule-group", "data-group": group.name },
      h("h3", {}, group.name,
        h("span", { class: "muted" }, `${group.file} · every ${formatSeconds(group.interval)} · last ${relative(group.lastEvaluation)} · took ${formatSeconds(group.evaluationTime)}`)),
      table(["Rule", "State", "Health", "Last evaluation", "Duration", "Error"], group.rules.map((rule) => [
        h("div", {},
          h("b", {}, rule.type === "alerting" ? "alert: " : "record: "), rule.name,
          h("pre", { class: "mono", style: "margin:2px 0; white-space:pre-wrap" }, rule.query),
          rule.type === "alerting" && rule.duration ? h("div", { class: "muted" }, `for ${formatSeconds(rule.duration)}`) : null,
          rule.type === "alerting" && rule.alerts && rule.alerts.length
            ? h("details", {}, h("summary", {}, `${rule.alerts.length} active`),
              rule.alerts.map((alert) => h("div", {}, badge(alert.state), labelChips(alert.labels), ` value ${alert.value}`)))
            : null),
        rule.type === "alerting" ? badge(rule.state) : h("span", { class: "muted" }, "—"),
        badge(rule.health),
        timeCell(rule.lastEvaluation),
        formatSeconds(rule.evaluationTime),
        h("span", { class: "error" }, rule.lastError || ""),
      ])))));
}

function keyValues(rows) {
  return h("table", { class: "key-values" }, h("tbody", {}, rows.map(([key, value]) => h("tr", {}, h("th", {}, key), h("td", {}, value)))));
}

/** Milliseconds since the epoch as a local time; Prometheus's sentinels for "empty" as such. */
function headTime(ms) {
  return Math.abs(ms) >= 9e18 ? h("span", { class: "muted" }, "empty") : timeCell(new Date(ms).toISOString());
}

function tsdbSection(tsdb) {
  if (!tsdb) return h("section", { class: "card", id: "tsdb" }, h("p", { class: "muted" }, "The storage is opening."));
  const head = tsdb.headStats;
  const top = (title, header, list) => [
    h("h3", {}, title),
    list.length ? table([header, "Count"], list.map((entry) => [h("span", { class: "mono" }, entry.name), h("td", { class: "num" }, entry.value)]))
      : h("p", { class: "muted" }, "None."),
  ];
  return h("section", { class: "card", id: "tsdb" },
    keyValues([
      ["Head series", h("span", { class: "head-series" }, head.numSeries)],
      ["Label pairs", head.numLabelPairs],
      ["Chunks", head.chunkCount],
      ["Oldest sample", headTime(head.minTime)],
      ["Newest sample", headTime(head.maxTime)],
    ]),
    top("Series by metric name", "Metric", tsdb.seriesCountByMetricName),
    top("Values by label name", "Label", tsdb.labelValueCountByLabelName),
    top("Series by label pair", "Pair", tsdb.seriesCountByLabelValuePair));
}

export async function renderStatus(view, params, stillCurrent) {
  const [build, runtime, tsdb, am, cluster, flags, config] = await Promise.all([
    get("/api/v1/status/buildinfo"),
    get("/api/v1/status/runtimeinfo"),
    // Unavailable (503) while the storage opens: the rest of the page still shows.
    get("/api/v1/status/tsdb").catch(() => null),
    get("/api/v2/status"),
    get("/api/ui/v1/cluster"),
    get("/api/v1/status/flags"),
    get("/api/v1/status/config"),
  ]);
  if (!stillCurrent()) return;
  const started = Date.parse(runtime.startTime);
  const clusterState = am.cluster.status;
  replace(view,
    h("h1", {}, "Status"),
    h("h2", {}, "Runtime and build"),
    h("section", { class: "card", id: "runtime" },
      keyValues([
        ["Version", build.version],
        ["Revision", build.revision],
        ["Branch", build.branch],
        ["Build date", build.buildDate],
        ["Compiler", build.goVersion],
        ["Started", h("span", {}, new Date(started).toLocaleString(), ` (up ${formatSeconds((Date.now() - started) / 1000)})`)],
        ["Working directory", h("span", { class: "mono" }, runtime.CWD)],
        ["Configuration", h("span", {}, badge(runtime.reloadConfigSuccess ? "ok" : "failed"), " last loaded ", timeCell(runtime.lastConfigTime))],
        ["Storage retention", runtime.storageRetention || "none"],
        ["WAL corruptions at start", runtime.corruptionCount],
        ["Async tasks", runtime.goroutineCount],
        ["Worker threads", runtime.GOMAXPROCS],
      ])),
    h("h2", {}, "Storage head"),
    tsdbSection(tsdb),
    h("h2", {}, "Cluster"),
    h("section", { class: "card", id: "cluster" },
      h("p", {}, "State ", badge(clusterState),
        cluster.clustered ? ` · node ${cluster.nodeName} in cluster ${cluster.clusterName} · peer timeout ${formatSeconds(cluster.peerTimeoutSeconds)}` : " · this node runs alone (no --cluster.listen-address)"),
      cluster.clustered ? [
        h("h3", {}, "Members"),
        table(["Name", "Address", ""], cluster.members.map((member) => [member.name, h("span", { class: "mono" }, member.address), member.isSelf ? "this node" : ""])),
        h("h3", {}, "Replication"),
        table(["State", "Merged", "Refused", "In sync"], cluster.sync.map((state) => [
          state.state, h("td", { class: "num" }, state.merged), h("td", { class: "num" }, state.refused),
          state.divergedSeconds > 0 ? h("span", {}, badge("pending"), ` differs for ${formatSeconds(state.divergedSeconds)}`) : badge("ok"),
        ])),
        h("p", { class: "muted" }, `${cluster.exchangesCompleted} anti-entropy exchanges, ${cluster.summariesSent} summaries sent, ${cluster.malformedMessages} malformed messages.`),
        am.cluster.tocsin ? h("p", { class: "muted" },
          `Notifications: ${am.cluster.tocsin.sentAsOwner} sent as owner, ${am.cluster.tocsin.sentInPlaceOfOwner} in place of the owner, ${am.cluster.tocsin.skippedSentByPeer} skipped (a peer sent them), ${am.cluster.tocsin.deferredNotifications} waiting for their turn; ${am.cluster.tocsin.claims} claims (${am.cluster.tocsin.ownClaims} ours).`) : null,
      ] : null,
      h("h3", {}, "Ranks of this node"),
      cluster.ranks.length ? table(["Group", "Receiver", "Integration", "Rank", "Waits"], cluster.ranks.flatMap((group) =>
        !group.integrations.length ? [[labelChips(group.labels), group.receiver, h("span", { class: "muted" }, "no integrations: nothing to send"), "", ""]] :
        group.integrations.map((integration) => [
          labelChips(group.labels), group.receiver, h("span", { class: "mono" }, integration.integration),
          h("td", { class: "num" }, integration.rank === 0 ? "0 (owner)" : integration.rank),
          formatSeconds(integration.waitSeconds),
        ]))) : h("p", { class: "muted" }, "No alert groups."),
      cluster.groupsNotListed ? h("p", { class: "muted" }, `… and ${cluster.groupsNotListed} more groups.`) : null),
    h("h2", {}, "Flags"),
    keyValues(Object.keys(flags).sort().map((name) => [name, h("span", { class: "mono" }, flags[name])])),
    h("h2", {}, "Configuration"),
    h("details", {}, h("summary", {}, "Configuration in force (secrets hidden)"), h("pre", { class: "card" }, config.yaml)));
}
