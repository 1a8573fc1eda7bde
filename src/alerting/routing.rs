//! The routing tree: which routes an alert takes, with Alertmanager's depth-first, left-to-right
//! search, and the route and group keys Alertmanager derives from it.
//!
//! Group keys leave the process (webhook payloads, the notification log, `amtool`), so they are
//! built byte for byte as Alertmanager builds them: `Route.Key()` joins each route's sorted
//! matchers from the root down, and a group key is `route_key + ":" + group_labels`, the labels
//! printed as Prometheus's `model.LabelSet.String()` does (Go's `%q` quoting).

use crate::alerting::LabelSet;
use crate::config::PromDuration;
use crate::config::alertmanager::{GroupBy, MatchOp, Matcher, Route, all_match};
use std::fmt::Write as _;
use std::sync::LazyLock;

/// A route's index in its [`RoutingTree`]: the route's position in a depth-first walk from the
/// root (the root is `RouteId(0)`), the order of [`Route::walk`]. Only meaningful for the tree
/// that handed it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId(pub usize);

/// One route with its settings after inheritance, as the dispatcher needs them.
#[derive(Debug, Clone)]
pub struct RouteNode {
    pub parent: Option<RouteId>,
    pub children: Vec<RouteId>,
    /// Position among the parent's children (0 for the root).
    pub position: usize,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: PromDuration,
    pub group_interval: PromDuration,
    pub repeat_interval: PromDuration,
    /// Not inherited: Alertmanager reads them from each route alone.
    pub mute_time_intervals: Vec<String>,
    /// Not inherited, as `mute_time_intervals`.
    pub active_time_intervals: Vec<String>,
    /// Whether an alert that matches this route goes on to try the following siblings.
    pub continue_matching: bool,
    /// This route's own matchers (`match`, `match_re` and `matchers`); an alert must satisfy all.
    pub matchers: Vec<Matcher>,
    /// Alertmanager's `Route.Key()`.
    key: String,
    /// Alertmanager's `Route.ID()`: the key plus the position among siblings.
    unique_key: String,
}

/// The routing tree in a flat arena, built once per configuration.
#[derive(Debug, Clone)]
pub struct RoutingTree {
    nodes: Vec<RouteNode>,
}

impl RoutingTree {
    /// Builds the tree from a finished root route: [`Route::effective`] must have been filled
    /// (`AlertmanagerConfig::finish` does it), as it carries the inherited settings.
    pub fn new(root: &Route) -> RoutingTree {
        let mut tree = RoutingTree { nodes: Vec::new() };
        tree.add(root, None, 0);
        tree
    }

    fn add(&mut self, route: &Route, parent: Option<RouteId>, position: usize) -> RouteId {
        let id = RouteId(self.nodes.len());
        let own_key = matchers_key(route);
        let key = match parent {
            Some(parent) => format!("{}/{own_key}", self.nodes[parent.0].key),
            None => own_key,
        };
        let unique_key = match parent {
            Some(_) => format!("{key}/{position}"),
            None => key.clone(),
        };
        let effective = &route.effective;
        self.nodes.push(RouteNode {
            parent,
            children: Vec::with_capacity(route.routes.len()),
            position,
            receiver: effective.receiver.clone(),
            group_by: effective.group_by.clone(),
            group_wait: effective.group_wait,
            group_interval: effective.group_interval,
            repeat_interval: effective.repeat_interval,
            mute_time_intervals: names(&route.mute_time_intervals),
            active_time_intervals: names(&route.active_time_intervals),
            continue_matching: route.continue_matching,
            matchers: effective.matchers.clone(),
            key,
            unique_key,
        });
        for (child_position, child) in route.routes.iter().enumerate() {
            let child_id = self.add(&child.value, Some(id), child_position);
            self.nodes[id.0].children.push(child_id);
        }
        id
    }

    pub fn root(&self) -> RouteId {
        RouteId(0)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true: a tree has at least its root.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The route behind an id this tree handed out.
    pub fn route(&self, id: RouteId) -> &RouteNode {
        &self.nodes[id.0]
    }

    /// Every route with its id, in depth-first order.
    pub fn routes(&self) -> impl Iterator<Item = (RouteId, &RouteNode)> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(index, node)| (RouteId(index), node))
    }

    /// The routes an alert with these labels goes to, in Alertmanager's order: a route matches
    /// when its own matchers do; its children are tried in order, and a matching child without
    /// `continue` ends the search among its siblings; a matching route none of whose children
    /// match is itself a result.
    pub fn match_alert(&self, labels: &LabelSet) -> Vec<RouteId> {
        let mut matched = Vec::new();
        self.collect_matches(self.root(), labels, &mut matched);
        matched
    }

    /// Appends the routes under `id` that take the alert; false when `id` itself does not match.
    fn collect_matches(&self, id: RouteId, labels: &LabelSet, matched: &mut Vec<RouteId>) -> bool {
        let node = &self.nodes[id.0];
        if !all_match(&node.matchers, |name| labels.get(name)) {
            return false;
        }
        let before = matched.len();
        for &child in &node.children {
            if self.collect_matches(child, labels, matched)
                && !self.nodes[child.0].continue_matching
            {
                break;
            }
        }
        if matched.len() == before {
            matched.push(id);
        }
        true
    }

    /// Alertmanager's `Route.Key()`, e.g. `{}/{severity="page"}`. Not unique: siblings with
    /// equal matchers share it, and so do their groups, as in Alertmanager.
    pub fn route_key(&self, id: RouteId) -> &str {
        &self.nodes[id.0].key
    }

    /// Alertmanager's `Route.ID()`, e.g. `{}/{severity="page"}/0`: the key and the route's
    /// position among its siblings, unique within the tree.
    pub fn route_unique_key(&self, id: RouteId) -> &str {
        &self.nodes[id.0].unique_key
    }

    /// The labels an alert is grouped by on this route: those named in `group_by` that the alert
    /// has, or all of them for `...`.
    pub fn group_labels(&self, id: RouteId, labels: &LabelSet) -> LabelSet {
        match &self.nodes[id.0].group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => labels.subset(names.iter().map(String::as_str)),
        }
    }

    /// Alertmanager's aggregation-group key: `route_key:group_labels`, e.g.
    /// `{}/{severity="page"}:{alertname="Down", job="api"}`.
    pub fn group_key(&self, id: RouteId, group_labels: &LabelSet) -> String {
        let key = &self.nodes[id.0].key;
        let mut group_key = String::with_capacity(key.len() + 1 + 16 * group_labels.len());
        group_key.push_str(key);
        group_key.push(':');
        write_label_set(&mut group_key, group_labels);
        group_key
    }
}

fn names(list: &[crate::config::Spanned<String>]) -> Vec<String> {
    list.iter().map(|name| name.value.clone()).collect()
}

/// A matcher as Alertmanager holds it for printing a route key.
struct KeyMatcher<'a> {
    name: &'a str,
    op: MatchOp,
    value: String,
}

/// A route's own matchers as Alertmanager's `labels.Matchers.String()` prints them, in its sort
/// order (name, then value, then operator). A `match_re` value prints anchored, `^(?:…)$`,
/// because Alertmanager builds that matcher from the compiled config regex.
fn matchers_key(route: &Route) -> String {
    let mut matchers: Vec<KeyMatcher<'_>> = route
        .match_equal
        .iter()
        .map(|(name, value)| KeyMatcher {
            name: name.as_str(),
            op: MatchOp::Equal,
            value: value.clone(),
        })
        .chain(route.match_re.iter().map(|(name, regex)| KeyMatcher {
            name: name.as_str(),
            op: MatchOp::Regex,
            value: format!("^(?:{})$", regex.as_str()),
        }))
        .chain(route.matchers.iter().map(|matcher| KeyMatcher {
            name: matcher.name(),
            op: matcher.op(),
            value: matcher.value().to_string(),
        }))
        .collect();
    matchers.sort_by(|a, b| (a.name, &a.value, a.op).cmp(&(b.name, &b.value, b.op)));
    let mut key = String::from("{");
    for (index, matcher) in matchers.iter().enumerate() {
        if index > 0 {
            key.push(',');
        }
        write_matcher(&mut key, matcher.name, matcher.op, &matcher.value);
    }
    key.push('}');
    key
}

/// Alertmanager's `Matcher.String()`: a name with characters its matcher syntax reserves is
/// Go-quoted together with the value; otherwise the value is quoted with OpenMetrics escapes.
fn write_matcher(out: &mut String, name: &str, op: MatchOp, value: &str) {
    let reserved = |c: char| c.is_whitespace() || "{}!=~,\\\"'`".contains(c);
    if name.contains(reserved) {
        write_go_quoted(out, name);
        out.push_str(op.as_str());
        write_go_quoted(out, value);
    } else {
        out.push_str(name);
        out.push_str(op.as_str());
        out.push('"');
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '"' => out.push_str("\\\""),
                other => out.push(other),
            }
        }
        out.push('"');
    }
}

/// Prometheus's `model.LabelSet.String()`: `{a="1", b="2"}`, sorted by name, values Go-quoted.
pub fn write_label_set(out: &mut String, labels: &LabelSet) {
    out.push('{');
    for (index, (name, value)) in labels.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        write_go_quoted(out, value);
    }
    out.push('}');
}

/// The characters Go's `strconv.IsPrint` accepts beyond ASCII: letters, marks, numbers,
/// punctuation and symbols (Unicode categories L, M, N, P, S).
static GO_PRINTABLE: LazyLock<Option<regex::Regex>> =
    LazyLock::new(|| regex::Regex::new(r"^[\p{L}\p{M}\p{N}\p{P}\p{S}]$").ok());

fn go_is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let mut buffer = [0u8; 4];
    GO_PRINTABLE
        .as_ref()
        .is_some_and(|printable| printable.is_match(c.encode_utf8(&mut buffer)))
}

/// Go's `strconv.Quote`, which `%q` uses: printable characters as they are, `"` and `\`
/// escaped, the rest as `\n`-style, `\xHH`, `\uHHHH` or `\UHHHHHHHH` escapes.
pub fn write_go_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if go_is_print(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) < 0x1_0000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alertmanager::parse_alertmanager_file;
    use proptest::prelude::*;

    fn tree(yaml: &str) -> RoutingTree {
        let config = parse_alertmanager_file(yaml, "test.yml").unwrap();
        RoutingTree::new(&config.route.value)
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        let mut set = LabelSet::new();
        for (name, value) in pairs {
            set.insert(*name, *value);
        }
        set
    }

    const RECEIVERS: &str = "
receivers:
  - name: notify-def
  - name: notify-A
  - name: notify-testing
  - name: notify-productionA
  - name: notify-productionB
  - name: notify-BC
";

    /// The tree of Alertmanager's own routing tests, written with the deprecated `match` and
    /// `match_re`.
    const CLASSIC_TREE: &str = "
route:
  receiver: notify-def
  routes:
  - match:
      owner: team-A
    receiver: notify-A
    routes:
    - match:
        env: testing
      receiver: notify-testing
      group_by: [...]
    - match:
        env: production
      receiver: notify-productionA
      group_wait: 1m
      continue: true
    - match_re:
        env: produ.*
        job: .*
      receiver: notify-productionB
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 1h
      group_by: [job]
  - match_re:
      owner: team-(B|C)
    group_by: [foo, bar]
    group_wait: 2m
    receiver: notify-BC
  - match:
      group_by: role
    group_by: [role]
    routes:
    - match:
        env: testing
      receiver: notify-testing
      routes:
      - match:
          wait: long
        group_wait: 2m
";

    /// The same tree with `matchers`, in both syntaxes.
    const MATCHERS_TREE: &str = r#"
route:
  receiver: notify-def
  routes:
  - matchers: ['{owner="team-A"}', '{level!="critical"}']
    receiver: notify-A
    routes:
    - matchers: ['{env="testing"}', '{baz!~".*quux"}']
      receiver: notify-testing
      group_by: [...]
    - matchers: ['{env="production"}']
      receiver: notify-productionA
      group_wait: 1m
      continue: true
    - matchers: [ env=~"produ.*", job=~".*"]
      receiver: notify-productionB
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 1h
      group_by: ['job']
  - matchers: [owner=~"team-(B|C)"]
    group_by: ['foo', 'bar']
    group_wait: 2m
    receiver: notify-BC
  - matchers: [group_by="role"]
    group_by: ['role']
    routes:
    - matchers: ['{env="testing"}']
      receiver: notify-testing
      routes:
      - matchers: [wait="long"]
        group_wait: 2m
"#;

    struct Case {
        labels: &'static [(&'static str, &'static str)],
        receivers: &'static [&'static str],
        keys: &'static [&'static str],
    }

    fn check(tree: &RoutingTree, cases: &[Case]) {
        for case in cases {
            let matched = tree.match_alert(&labels(case.labels));
            let receivers: Vec<&str> = matched
                .iter()
                .map(|&id| tree.route(id).receiver.as_str())
                .collect();
            let keys: Vec<&str> = matched.iter().map(|&id| tree.route_key(id)).collect();
            assert_eq!(receivers, case.receivers, "receivers for {:?}", case.labels);
            assert_eq!(keys, case.keys, "keys for {:?}", case.labels);
        }
    }

    #[test]
    fn classic_tree_routes_like_alertmanager() {
        let tree = tree(&format!("{CLASSIC_TREE}{RECEIVERS}"));
        check(
            &tree,
            &[
                Case {
                    labels: &[("owner", "team-A")],
                    receivers: &["notify-A"],
                    keys: &[r#"{}/{owner="team-A"}"#],
                },
                Case {
                    labels: &[("owner", "team-A"), ("env", "unset")],
                    receivers: &["notify-A"],
                    keys: &[r#"{}/{owner="team-A"}"#],
                },
                Case {
                    labels: &[("owner", "team-C")],
                    receivers: &["notify-BC"],
                    keys: &[r#"{}/{owner=~"^(?:team-(B|C))$"}"#],
                },
                Case {
                    labels: &[("owner", "team-A"), ("env", "testing")],
                    receivers: &["notify-testing"],
                    keys: &[r#"{}/{owner="team-A"}/{env="testing"}"#],
                },
                Case {
                    labels: &[("owner", "team-A"), ("env", "production")],
                    receivers: &["notify-productionA", "notify-productionB"],
                    keys: &[
                        r#"{}/{owner="team-A"}/{env="production"}"#,
                        r#"{}/{owner="team-A"}/{env=~"^(?:produ.*)$",job=~"^(?:.*)$"}"#,
                    ],
                },
                Case {
                    labels: &[("group_by", "role")],
                    receivers: &["notify-def"],
                    keys: &[r#"{}/{group_by="role"}"#],
                },
                Case {
                    labels: &[("env", "testing"), ("group_by", "role")],
                    receivers: &["notify-testing"],
                    keys: &[r#"{}/{group_by="role"}/{env="testing"}"#],
                },
                Case {
                    labels: &[("env", "testing"), ("group_by", "role"), ("wait", "long")],
                    receivers: &["notify-testing"],
                    keys: &[r#"{}/{group_by="role"}/{env="testing"}/{wait="long"}"#],
                },
                Case {
                    labels: &[("alertname", "Unrouted")],
                    receivers: &["notify-def"],
                    keys: &["{}"],
                },
            ],
        );
    }

    #[test]
    fn matchers_tree_routes_like_alertmanager() {
        let tree = tree(&format!("{MATCHERS_TREE}{RECEIVERS}"));
        check(
            &tree,
            &[
                Case {
                    labels: &[("owner", "team-A")],
                    receivers: &["notify-A"],
                    keys: &[r#"{}/{level!="critical",owner="team-A"}"#],
                },
                Case {
                    labels: &[("owner", "team-A"), ("level", "critical")],
                    receivers: &["notify-def"],
                    keys: &["{}"],
                },
                Case {
                    labels: &[("owner", "team-C")],
                    receivers: &["notify-BC"],
                    keys: &[r#"{}/{owner=~"team-(B|C)"}"#],
                },
                Case {
                    labels: &[("owner", "team-A"), ("env", "testing")],
                    receivers: &["notify-testing"],
                    keys: &[
                        r#"{}/{level!="critical",owner="team-A"}/{baz!~".*quux",env="testing"}"#,
                    ],
                },
                Case {
                    labels: &[("owner", "team-A"), ("env", "testing"), ("baz", "aquux")],
                    receivers: &["notify-A"],
                    keys: &[r#"{}/{level!="critical",owner="team-A"}"#],
                },
                Case {
                    labels: &[("owner", "team-A"), ("env", "production")],
                    receivers: &["notify-productionA", "notify-productionB"],
                    keys: &[
                        r#"{}/{level!="critical",owner="team-A"}/{env="production"}"#,
                        r#"{}/{level!="critical",owner="team-A"}/{env=~"produ.*",job=~".*"}"#,
                    ],
                },
                Case {
                    labels: &[("env", "testing"), ("group_by", "role"), ("wait", "long")],
                    receivers: &["notify-testing"],
                    keys: &[r#"{}/{group_by="role"}/{env="testing"}/{wait="long"}"#],
                },
            ],
        );
    }

    #[test]
    fn inherited_settings_and_walk_order() {
        let tree = tree(&format!("{CLASSIC_TREE}{RECEIVERS}"));
        let receivers: Vec<&str> = tree
            .routes()
            .map(|(_, route)| route.receiver.as_str())
            .collect();
        assert_eq!(
            receivers,
            [
                "notify-def",
                "notify-A",
                "notify-testing",
                "notify-productionA",
                "notify-productionB",
                "notify-BC",
                "notify-def",
                "notify-testing",
                "notify-testing",
            ]
        );
        let production_b = tree.route(RouteId(4));
        assert_eq!(production_b.group_by, GroupBy::Labels(vec!["job".into()]));
        assert_eq!(
            (
                production_b.group_wait,
                production_b.group_interval,
                production_b.repeat_interval
            ),
            (
                PromDuration::from_secs(30),
                PromDuration::from_secs(300),
                PromDuration::from_secs(3600)
            )
        );
        assert_eq!(tree.route(RouteId(2)).group_by, GroupBy::All);
        let long_wait = tree.route(RouteId(8));
        assert_eq!(long_wait.group_by, GroupBy::Labels(vec!["role".into()]));
        assert_eq!(long_wait.group_wait, PromDuration::from_secs(120));
        assert_eq!(long_wait.parent, Some(RouteId(7)));
        assert_eq!(tree.route(RouteId(7)).children, [RouteId(8)]);
    }

    #[test]
    fn unique_keys_add_the_position_among_siblings() {
        let tree = tree(&format!("{CLASSIC_TREE}{RECEIVERS}"));
        assert_eq!(tree.route_unique_key(tree.root()), "{}");
        assert_eq!(
            tree.route_unique_key(RouteId(1)),
            r#"{}/{owner="team-A"}/0"#
        );
        assert_eq!(
            tree.route_unique_key(RouteId(3)),
            r#"{}/{owner="team-A"}/{env="production"}/1"#
        );
        assert_eq!(
            tree.route_unique_key(RouteId(6)),
            r#"{}/{group_by="role"}/2"#
        );
    }

    #[test]
    fn group_keys_match_alertmanager() {
        let tree = tree(&format!("{CLASSIC_TREE}{RECEIVERS}"));
        let alert = labels(&[
            ("alertname", "HighLatency"),
            ("owner", "team-A"),
            ("env", "production"),
            ("job", "api"),
        ]);
        let matched = tree.match_alert(&alert);
        let keys: Vec<String> = matched
            .iter()
            .map(|&id| tree.group_key(id, &tree.group_labels(id, &alert)))
            .collect();
        assert_eq!(
            keys,
            [
                r#"{}/{owner="team-A"}/{env="production"}:{}"#,
                r#"{}/{owner="team-A"}/{env=~"^(?:produ.*)$",job=~"^(?:.*)$"}:{job="api"}"#,
            ]
        );

        // `...` groups by every label.
        let testing = labels(&[("owner", "team-A"), ("env", "testing"), ("b", "2")]);
        let [id] = tree.match_alert(&testing)[..] else {
            panic!("one route expected");
        };
        assert_eq!(
            tree.group_key(id, &tree.group_labels(id, &testing)),
            r#"{}/{owner="team-A"}/{env="testing"}:{b="2", env="testing", owner="team-A"}"#
        );

        // Labels named in group_by that the alert lacks are left out.
        let team_b = labels(&[("owner", "team-B"), ("foo", "1")]);
        let [id] = tree.match_alert(&team_b)[..] else {
            panic!("one route expected");
        };
        assert_eq!(tree.group_labels(id, &team_b), labels(&[("foo", "1")]));
    }

    #[test]
    fn values_are_quoted_as_go_does() {
        let mut out = String::new();
        write_label_set(
            &mut out,
            &labels(&[
                ("a", "tab\there \"q\" back\\slash"),
                ("b", "caf\u{e9} \u{4e16}"),
                ("c", "\u{1}\u{7f}\n\r\u{7}"),
                ("d", "\u{a0}\u{200b}\u{1f600}\u{e0001}"),
            ]),
        );
        assert_eq!(
            out,
            r#"{a="tab\there \"q\" back\\slash", b="café 世", c="\x01\x7f\n\r\a", d="\u00a0\u200b😀\U000e0001"}"#
        );

        // Route keys escape only what OpenMetrics escapes.
        let tree = tree(
            r#"
route:
  receiver: default
  routes:
  - matchers: ['msg="a\"b\\c\nd	é"']
receivers:
  - name: default
"#,
        );
        assert_eq!(
            tree.route_key(RouteId(1)),
            "{}/{msg=\"a\\\"b\\\\c\\nd\té\"}"
        );
    }

    #[test]
    fn time_intervals_are_not_inherited() {
        let tree = tree(
            "
route:
  receiver: default
  routes:
  - matchers: [team=a]
    mute_time_intervals: [nights]
    active_time_intervals: [weekdays]
    routes:
    - matchers: [severity=page]
receivers:
  - name: default
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: '00:00', end_time: '06:00'}]
  - name: weekdays
    time_intervals:
      - weekdays: ['monday:friday']
",
        );
        assert_eq!(tree.route(RouteId(1)).mute_time_intervals, ["nights"]);
        assert_eq!(tree.route(RouteId(1)).active_time_intervals, ["weekdays"]);
        assert!(tree.route(RouteId(2)).mute_time_intervals.is_empty());
        assert!(tree.route(RouteId(2)).active_time_intervals.is_empty());
    }

    /// A route of a random tree, kept apart from the config types so the oracle below shares no
    /// code with the tree under test.
    #[derive(Debug, Clone)]
    struct TestRoute {
        matchers: Vec<(&'static str, &'static str, &'static str)>,
        continue_matching: bool,
        children: Vec<TestRoute>,
    }

    impl TestRoute {
        fn size(&self) -> usize {
            1 + self.children.iter().map(TestRoute::size).sum::<usize>()
        }

        fn write_yaml(&self, out: &mut String, indent: usize) {
            let pad = " ".repeat(indent);
            if !self.matchers.is_empty() {
                let entries: Vec<String> = self
                    .matchers
                    .iter()
                    .map(|(name, op, value)| format!("'{name}{op}\"{value}\"'"))
                    .collect();
                out.push_str(&format!("{pad}matchers: [{}]\n", entries.join(", ")));
            }
            if self.continue_matching {
                out.push_str(&format!("{pad}continue: true\n"));
            }
            if !self.children.is_empty() {
                out.push_str(&format!("{pad}routes:\n"));
                for child in &self.children {
                    out.push_str(&format!("{pad}- receiver: default\n"));
                    child.write_yaml(out, indent + 2);
                }
            }
        }
    }

    fn oracle_matches(matcher: &(&str, &str, &str), labels: &LabelSet) -> bool {
        let (name, op, value) = *matcher;
        let actual = labels.get(name).unwrap_or("");
        let regex = || regex::Regex::new(&format!("^(?:{value})$")).unwrap();
        match op {
            "=" => actual == value,
            "!=" => actual != value,
            "=~" => regex().is_match(actual),
            "!~" => !regex().is_match(actual),
            other => panic!("unknown operator {other}"),
        }
    }

    /// Alertmanager's algorithm written down directly, on the nested tree; `index` is the
    /// route's depth-first position.
    fn oracle(route: &TestRoute, index: usize, labels: &LabelSet) -> Option<Vec<usize>> {
        if !route.matchers.iter().all(|m| oracle_matches(m, labels)) {
            return None;
        }
        let mut found = Vec::new();
        let mut child_index = index + 1;
        for child in &route.children {
            if let Some(matches) = oracle(child, child_index, labels) {
                found.extend(matches);
                if !child.continue_matching {
                    break;
                }
            }
            child_index += child.size();
        }
        if found.is_empty() {
            found.push(index);
        }
        Some(found)
    }

    fn matcher_strategy() -> impl Strategy<Value = (&'static str, &'static str, &'static str)> {
        (
            prop::sample::select(vec!["a", "b", "c"]),
            prop::sample::select(vec!["=", "!=", "=~", "!~"]),
            prop::sample::select(vec!["x", "y", "", "x|y", ".*", "x.*"]),
        )
    }

    fn route_strategy() -> impl Strategy<Value = TestRoute> {
        let leaf = (
            prop::collection::vec(matcher_strategy(), 0..3),
            any::<bool>(),
        )
            .prop_map(|(matchers, continue_matching)| TestRoute {
                matchers,
                continue_matching,
                children: Vec::new(),
            });
        leaf.prop_recursive(4, 40, 4, |inner| {
            (
                prop::collection::vec(matcher_strategy(), 0..3),
                any::<bool>(),
                prop::collection::vec(inner, 0..4),
            )
                .prop_map(|(matchers, continue_matching, children)| TestRoute {
                    matchers,
                    continue_matching,
                    children,
                })
        })
    }

    fn labels_strategy() -> impl Strategy<Value = LabelSet> {
        prop::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "c"]),
                prop::sample::select(vec!["x", "y", "z", "xy"]),
            ),
            0..4,
        )
        .prop_map(|pairs| {
            let mut set = LabelSet::new();
            for (name, value) in pairs {
                set.insert(name, value);
            }
            set
        })
    }

    proptest! {
        #[test]
        fn match_alert_agrees_with_the_oracle(
            children in prop::collection::vec(route_strategy(), 0..5),
            alerts in prop::collection::vec(labels_strategy(), 1..8),
        ) {
            let root = TestRoute { matchers: Vec::new(), continue_matching: false, children };
            let mut yaml = String::from("route:\n  receiver: default\n");
            root.write_yaml(&mut yaml, 2);
            yaml.push_str("receivers:\n  - name: default\n");
            let tree = tree(&yaml);
            prop_assert_eq!(tree.len(), root.size());
            for alert in &alerts {
                let expected = oracle(&root, 0, alert).unwrap_or_default();
                let actual: Vec<usize> =
                    tree.match_alert(alert).into_iter().map(|id| id.0).collect();
                prop_assert_eq!(actual, expected, "labels {:?}\n{}", alert, yaml);
            }
        }
    }
}
