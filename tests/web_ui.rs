//! The web UI in a real browser: headless Chromium driven through `chromedriver` (W3C WebDriver
//! over HTTP) against a real `tocsin` process with a route prefix, a scrape target, a rule file
//! and a webhook receiver. Every page must load without a JavaScript error; the alert posted to
//! the API shows in its group; a silence typed into the UI's form lands in `/api/v2/silences`
//! and silences the alert; expiring it in the UI expires it in the API; the query page draws a
//! chart of `up`. Needs the Debian packages `chromium` and `chromium-driver` (`scripts/test`
//! installs them).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::RunningNode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The route prefix the node serves under, so the UI's relative URLs are exercised.
const PREFIX: &str = "/tocsin";
/// How long any one thing may take to appear; generous, since the machine may be busy.
const PATIENCE: Duration = Duration::from_secs(30);

/// An HTTP answer: status, lowercase header names with values, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

/// A small HTTP/1.1 client (the WebDriver protocol and header checks need methods, bodies and
/// headers, which `common`'s helpers do not expose).
fn http(method: &str, url: &str, body: Option<&Value>, extra_headers: &[(&str, &str)]) -> Answer {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map(|(host, path)| (host, format!("/{path}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = TcpStream::connect(host).unwrap_or_else(|error| panic!("{url}: {error}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{url}: bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
    {
        // Read exactly the body: chromedriver keeps the connection open despite `close`.
        body.resize(length, 0);
        reader.read_exact(&mut body).unwrap();
    } else {
        reader.read_to_end(&mut body).unwrap();
    }
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Waits up to `PATIENCE` for `check` to give a value; panics with `what` otherwise.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One listener that is both the scrape target (`/metrics`) and the webhook receiver (anything
/// else, counted).
struct Upstream {
    port: u16,
    webhooks: Arc<AtomicUsize>,
}

fn start_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let webhooks = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&webhooks);
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || serve_upstream(stream, &counter));
        }
    });
    Upstream { port, webhooks }
}

fn serve_upstream(stream: TcpStream, webhooks: &AtomicUsize) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let answer = if request_line.contains(" /metrics ") {
        "# TYPE demo_temperature_celsius gauge\ndemo_temperature_celsius 21.5\n"
    } else {
        webhooks.fetch_add(1, Ordering::SeqCst);
        ""
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

const RULES: &str = "groups:
  - name: demo
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: TargetDown
        expr: up == 0
        for: 1m
";

fn start_node(dir: &Path, upstream: &Upstream) -> RunningNode {
    let config = format!(
        "global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - rules.yml
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ['127.0.0.1:{port}']
alertmanager:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 1s
    group_interval: 2s
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs:
        - url: http://127.0.0.1:{port}/hook
log_notifications:
  receivers: [hook]
",
        port = upstream.port
    );
    std::fs::write(dir.join("rules.yml"), RULES).unwrap();
    let file = dir.join("tocsin.yml");
    std::fs::write(&file, config).unwrap();
    RunningNode::start(
        dir,
        &[
            "--config.file",
            file.to_str().unwrap(),
            "--web.external-url",
            &format!("http://tocsin.example.invalid{PREFIX}/"),
        ],
    )
}

/// `chromedriver` on a free port, with one headless Chromium session; both end when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(dir: &Path) -> Browser {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "{CHROMEDRIVER} and {CHROMIUM} are needed: apt-get install chromium chromium-driver \
             (scripts/test installs them)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
        };
        eventually("chromedriver to answer /status", || {
            TcpStream::connect(("127.0.0.1", port)).ok()?;
            let answer = http("GET", &format!("{}/status", browser.base), None, &[]);
            (answer.json()["value"]["ready"] == json!(true)).then_some(())
        });
        let profile = dir.join("chromium-profile");
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1280,900",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let answer = http(
            "POST",
            &format!("{}/session", browser.base),
            Some(&capabilities),
            &[],
        );
        let value = answer.json();
        browser.session = value["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {value}"))
            .to_string();
        browser
    }

    /// One WebDriver command; panics with the driver's message on an error.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = self.try_command(method, path, body);
        answer.unwrap_or_else(|error| panic!("WebDriver {method} {path}: {error}"))
    }

    fn try_command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let body = body.or_else(|| (method == "POST").then(|| json!({})));
        let answer = http(method, &url, body.as_ref(), &[]);
        let value = answer.json();
        if answer.status == 200 {
            Ok(value["value"].clone())
        } else {
            Err(value["value"].clone())
        }
    }

    fn go(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    fn script(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The first element matching `css`, if any.
    fn find(&self, css: &str) -> Option<String> {
        let found = self
            .try_command(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .ok()?;
        found[ELEMENT_KEY].as_str().map(str::to_string)
    }

    fn wait_for(&self, css: &str) -> String {
        self.eventually(&format!("an element matching {css:?}"), || self.find(css))
    }

    /// Like [`eventually`], but a timeout shows what the page looked like, for debugging.
    fn eventually<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() > deadline {
                let state = self.script(
                    "return {url: location.href, errors: window.tocsinErrors, text: document.body ? document.body.innerText : null};",
                    json!([]),
                );
                let log = self.try_command("POST", "/se/log", Some(json!({ "type": "browser" })));
                panic!("timed out waiting for {what}\npage: {state:#}\nconsole: {log:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until some element matching `css` contains `text`.
    fn wait_for_text(&self, css: &str, text: &str) {
        self.eventually(&format!("{css:?} containing {text:?}"), || {
            let found = self.script(
                "return [...document.querySelectorAll(arguments[0])].some((e) => e.textContent.includes(arguments[1]));",
                json!([css, text]),
            );
            (found == json!(true)).then_some(())
        });
    }

    fn click(&self, element: &str) {
        self.command("POST", &format!("/element/{element}/click"), None);
    }

    fn type_into(&self, element: &str, text: &str) {
        self.command("POST", &format!("/element/{element}/clear"), None);
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn text(&self, css: &str) -> String {
        self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Fails if the page reported an uncaught error or the console logged one (which includes
    /// failed loads of scripts and API calls the page could not handle).
    fn assert_no_errors(&self, page: &str) {
        let uncaught = self.script("return window.tocsinErrors || null;", json!([]));
        assert_eq!(
            uncaught,
            json!([]),
            "{page}: uncaught JavaScript errors (or the error hook did not load)"
        );
        let log = self.command("POST", "/se/log", Some(json!({ "type": "browser" })));
        let severe: Vec<&Value> = log
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == json!("SEVERE"))
            .collect();
        assert!(
            severe.is_empty(),
            "{page}: errors in the browser console: {severe:?}"
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_command("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn api(node: &RunningNode, path: &str) -> Value {
    let answer = http("GET", &node.url(&format!("{PREFIX}{path}")), None, &[]);
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
    answer.json()
}

#[test]
fn the_ui_serves_its_assets_with_types_and_caching() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream();
    let node = start_node(dir.path(), &upstream);
    let home = http("GET", &node.url(PREFIX), None, &[]);
    assert_eq!(home.status, 302);
    assert_eq!(home.header("location"), Some("/tocsin/ui/"));
    let slash = http("GET", &node.url(&format!("{PREFIX}/")), None, &[]);
    assert_eq!(slash.status, 302);
    assert_eq!(slash.header("location"), Some("/tocsin/ui/"));
    let bare = http("GET", &node.url(&format!("{PREFIX}/ui")), None, &[]);
    assert_eq!(bare.header("location"), Some("/tocsin/ui/"));

    let page = http("GET", &node.url(&format!("{PREFIX}/ui/")), None, &[]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let etag = page
        .header("etag")
        .expect("the page has an ETag")
        .to_string();
    let revalidated = http(
        "GET",
        &node.url(&format!("{PREFIX}/ui/")),
        None,
        &[("If-None-Match", &etag)],
    );
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());

    let script = page
        .body
        .split('"')
        .find(|part| part.starts_with("assets/") && part.ends_with("/app.js"))
        .unwrap_or_else(|| panic!("no versioned app.js in the page:\n{}", page.body))
        .to_string();
    let asset = http(
        "GET",
        &node.url(&format!("{PREFIX}/ui/{script}")),
        None,
        &[],
    );
    assert_eq!(asset.status, 200);
    assert_eq!(
        asset.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        asset.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(asset.body.contains("import"));
    let css = script.replace("app.js", "app.css");
    let css = http("GET", &node.url(&format!("{PREFIX}/ui/{css}")), None, &[]);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    // An old page's folder still gets the files, but they must not be cached under its URL.
    let stale = http(
        "GET",
        &node.url(&format!("{PREFIX}/ui/assets/0000000000000000/app.js")),
        None,
        &[],
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.header("cache-control"), Some("no-cache"));
    let missing = http(
        "GET",
        &node.url(&format!("{PREFIX}/ui/assets/0/nope.js")),
        None,
        &[],
    );
    assert_eq!(missing.status, 404);

    let cluster = api(&node, "/api/ui/v1/cluster");
    assert_eq!(cluster["clustered"], json!(false));
    assert_eq!(cluster["settled"], json!(true));
}

#[test]
fn every_page_works_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_upstream();
    let node = start_node(dir.path(), &upstream);
    let alert = json!([{
        "labels": { "alertname": "DiskFull", "instance": "db-1", "severity": "page" },
        "annotations": { "summary": "the disk is almost full" },
    }]);
    let posted = http(
        "POST",
        &node.url(&format!("{PREFIX}/api/v2/alerts")),
        Some(&alert),
        &[],
    );
    assert_eq!(posted.status, 200, "POST /api/v2/alerts: {}", posted.body);
    eventually("the alert in its group", || {
        let groups = api(&node, "/api/v2/alerts/groups");
        (groups.as_array()?.len() == 1).then_some(())
    });
    eventually("a scrape of the demo target", || {
        let up = api(&node, "/api/v1/query?query=up");
        (!up["data"]["result"].as_array()?.is_empty()).then_some(())
    });
    let browser = Browser::start(dir.path());
    let ui = |route: &str| node.url(&format!("{PREFIX}/ui/#/{route}"));

    // `/` (here the prefix) redirects to the UI, whose home is the alerts page.
    browser.go(&node.url(&format!("{PREFIX}/")));
    browser.wait_for(".alert-group[data-receiver=\"hook\"] .alert[data-state=\"active\"]");
    browser.wait_for_text(".alert-group h3", "alertname=\"DiskFull\"");
    browser.wait_for_text(".alert-group .alert", "instance=\"db-1\"");
    browser.wait_for_text(".alert-group .alert", "the disk is almost full");
    browser.assert_no_errors("alerts");

    // The matcher filter: a matcher that excludes the alert empties the page.
    let filter = browser.wait_for("#alert-filter");
    browser.type_into(&filter, "{alertname=\"DiskFull\", instance=~\"web-.*\"}");
    browser.click(&browser.wait_for("#alert-filter-apply"));
    browser.wait_for_text("#alert-groups", "No alerts match.");
    browser.type_into(&filter, "{instance=~\"db-.*\"}");
    browser.click(&browser.wait_for("#alert-filter-apply"));
    browser.wait_for(".alert[data-state=\"active\"]");
    browser.assert_no_errors("alerts, filtered");

    // "Silence this" opens the form pre-filled with the alert's labels.
    browser.click(&browser.wait_for(".alert .silence-this"));
    let matchers = browser.wait_for("#silence-matchers");
    let prefilled = browser.script(
        "return document.querySelector('#silence-matchers').value;",
        json!([]),
    );
    assert_eq!(
        prefilled,
        json!("{alertname=\"DiskFull\", instance=\"db-1\", severity=\"page\"}")
    );
    browser.wait_for_text("#silence-preview-count", "1 alert would be silenced");
    // Typed matchers, and the preview follows them.
    browser.type_into(&matchers, "{alertname=\"DiskFull\", instance=~\"web-.*\"}");
    browser.wait_for_text("#silence-preview-count", "0 alerts would be silenced");
    browser.type_into(&matchers, "{alertname=\"DiskFull\", instance=~\"db-.*\"}");
    browser.wait_for_text("#silence-preview-count", "1 alert would be silenced");
    browser.type_into(&browser.wait_for("#silence-duration"), "3h");
    browser.type_into(&browser.wait_for("#silence-creator"), "ops@example.org");
    browser.type_into(&browser.wait_for("#silence-comment"), "replacing the disk");
    browser.assert_no_errors("new silence");
    browser.click(&browser.wait_for("#silence-submit"));
    browser.wait_for("#silence-created");
    browser.assert_no_errors("silence created");

    let silences = api(&node, "/api/v2/silences");
    let silences = silences.as_array().unwrap();
    assert_eq!(silences.len(), 1, "{silences:?}");
    let silence = &silences[0];
    let id = silence["id"].as_str().unwrap().to_string();
    assert_eq!(silence["status"]["state"], json!("active"));
    assert_eq!(silence["createdBy"], json!("ops@example.org"));
    assert_eq!(silence["comment"], json!("replacing the disk"));
    assert_eq!(
        silence["matchers"],
        json!([
            { "name": "alertname", "value": "DiskFull", "isRegex": false, "isEqual": true },
            { "name": "instance", "value": "db-.*", "isRegex": true, "isEqual": true },
        ])
    );
    let length = jiff_seconds(&silence["endsAt"]) - jiff_seconds(&silence["startsAt"]);
    assert!(
        (3 * 3600 - 5..=3 * 3600 + 5).contains(&length),
        "a 3h silence lasts {length}s"
    );
    browser.wait_for_text(&format!(".silence[data-id=\"{id}\"]"), "ops@example.org");

    // The alert now shows as silenced, with a link to its silence.
    browser.go(&ui("alerts"));
    browser.wait_for(".alert[data-state=\"silenced\"]");
    let alerts = api(&node, "/api/v2/alerts");
    assert_eq!(alerts[0]["status"]["silencedBy"], json!([id]));
    browser.assert_no_errors("alerts, silenced");

    // Expire it from the list (two clicks), and the API agrees.
    browser.go(&ui("silences?state=active"));
    let expire = browser.wait_for(&format!(".silence[data-id=\"{id}\"] button.expire"));
    browser.click(&expire);
    browser.wait_for_text(
        &format!(".silence[data-id=\"{id}\"] button.expire"),
        "Click again",
    );
    browser.click(&expire);
    browser.wait_for("#silence-expired");
    browser.wait_for(&format!(
        ".silence[data-id=\"{id}\"][data-state=\"expired\"]"
    ));
    let expired = api(&node, &format!("/api/v2/silence/{id}"));
    assert_eq!(expired["status"]["state"], json!("expired"));
    browser.assert_no_errors("silence expired");
    browser.go(&ui("alerts"));
    browser.wait_for(".alert[data-state=\"active\"]");

    // The query page: a chart of `up` with a drawn line, a legend, and the instant table.
    browser.go(&ui("query?expr=up&range=5m"));
    browser.wait_for("canvas#graph[data-series=\"1\"]");
    browser.wait_for_text("#legend", "up{instance=\"127.0.0.1:");
    let drawn = browser.script(
        // Pixels near the first series' colour (#2b6cb0); the axes and grid are grey.
        "const c = document.querySelector('canvas#graph');
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
         let n = 0;
         for (let i = 0; i < d.length; i += 4) {
           if (d[i + 3] > 100 && Math.abs(d[i] - 43) < 40 && Math.abs(d[i + 1] - 108) < 40 && Math.abs(d[i + 2] - 176) < 40) n++;
         }
         return n;",
        json!([]),
    );
    assert!(drawn.as_u64().unwrap() > 0, "no series pixels on the chart");
    browser.assert_no_errors("query graph");
    browser.click(&browser.wait_for("[data-tab=\"table\"]"));
    browser.wait_for_text("#query-output td", "up{instance=\"127.0.0.1:");
    assert!(browser.text("#query-output").contains("job=\"demo\""));
    browser.assert_no_errors("query table");

    browser.go(&ui("targets"));
    browser.wait_for_text(".target-pool[data-pool=\"demo\"]", "1/1 up");
    browser.assert_no_errors("targets");

    browser.go(&ui("rules"));
    browser.wait_for_text(".rule-group[data-group=\"demo\"]", "TargetDown");
    browser.wait_for_text(".rule-group[data-group=\"demo\"]", "job:up:sum");
    browser.assert_no_errors("rules");

    browser.go(&ui("status"));
    // Every integration of the group's receiver has a rank, the log one included.
    browser.wait_for_text("#cluster", "hook/webhook/0");
    browser.wait_for_text("#cluster", "hook/log/0");
    browser.wait_for_text("#cluster", "0 (owner)");
    // Runtime information from /api/v1/status/runtimeinfo.
    browser.wait_for_text("#runtime", "Worker threads");
    let runtime = browser.text("#runtime");
    let cwd = std::env::current_dir().unwrap().display().to_string();
    assert!(
        runtime.contains(&cwd),
        "no working directory {cwd} in {runtime}"
    );
    assert!(runtime.contains("15d"), "no storage retention in {runtime}");
    assert!(runtime.contains(env!("CARGO_PKG_VERSION")), "{runtime}");
    // The head's statistics from /api/v1/status/tsdb: the scraped metric, and as many series
    // as the API counts (read after the page, since scrapes may add series meanwhile).
    browser.wait_for_text("#tsdb", "demo_temperature_celsius");
    let shown: u64 = browser.text("#tsdb .head-series").trim().parse().unwrap();
    let head = api(&node, "/api/v1/status/tsdb");
    let counted = head["data"]["headStats"]["numSeries"].as_u64().unwrap();
    assert!(
        shown > 0 && shown <= counted,
        "the page shows {shown} head series, the API {counted}"
    );
    browser.wait_for_text("main", "web.external-url");
    browser.assert_no_errors("status");

    eventually("the webhook receiver to get the alert", || {
        (upstream.webhooks.load(Ordering::SeqCst) > 0).then_some(())
    });
}

/// Seconds since the epoch of an RFC 3339 time in a JSON value.
fn jiff_seconds(value: &Value) -> i64 {
    value
        .as_str()
        .and_then(|text| text.parse::<jiff::Timestamp>().ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .as_second()
}
