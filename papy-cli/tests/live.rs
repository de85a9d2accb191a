//! `papy run --ui` and `--report`: the live page in a real headless
//! Chromium shows what `/api/state` says, `/metrics` parses as Prometheus
//! text, the controls act only with the run's token, and the report
//! opens offline with the run's totals.

#![cfg(unix)]

#[path = "common/browser.rs"]
mod browser;
#[path = "../../papy-plugins/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use browser::Browser;
use serde_json::Value;

fn papy() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_papy"));
    c.env("PAPY_PLUGIN_PATH", support::plugin_dir());
    c
}

/// Where the tests leave their screenshots.
fn shots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

/// A long run: 1 000 failures first, then items without end, through a
/// process pool of 2 workers and a node on the pulling thread.
fn endless(dir: &Path) -> PathBuf {
    let file = dir.join("live.toml");
    std::fs::write(
        &file,
        format!(
            "[plugins]\nload = [\"math\"]\n[resources.pool]\nkind = \"process\"\nworkers = 2\n\
             [inputs.n]\nkind = \"range\"\nstart = -1000\nend = 1000000000000\n\
             [[pipers]]\nname = \"square\"\nresource = \"pool\"\ninputs = [\"n\"]\nworker = [\"math.fragile\"]\n\
             [[pipers]]\nname = \"show\"\ninputs = [\"square\"]\nworker = [\"papy.json_dumps\"]\n\
             [outputs.o]\npiper = \"show\"\npath = \"{}\"\n",
            dir.join("out.txt").display()
        ),
    )
    .expect("write");
    file
}

/// A run with `--ui`, and the page's address (token included).
struct Live {
    child: Child,
    url: String,
    base: String,
}

impl Live {
    fn start(file: &Path) -> Live {
        let mut child = papy()
            .args(["run", "-q", "--ui"])
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("papy");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("papy ended before printing the page's address")
                .expect("stderr");
            if let Some(u) = line.strip_prefix("papy: live view at ") {
                break u.to_string();
            }
        };
        // Keep reading stderr so papy never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let base = url.split("/?").next().expect("base").to_string();
        Live { child, url, base }
    }

    fn token(&self) -> &str {
        self.url.split("token=").nth(1).expect("a token")
    }

    fn state(&self) -> Value {
        ureq::get(&format!("{}/api/state", self.base))
            .call()
            .expect("state")
            .body_mut()
            .read_json()
            .expect("json")
    }

    /// Waits (a hang guard) until the state satisfies `ok`.
    fn wait_state(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.state();
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "never {what}: {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// POSTs a control with `token`; the status.
    fn control(&self, action: &str, token: Option<&str>) -> u16 {
        let mut req = ureq::post(&format!("{}/api/{action}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        match req.send_empty() {
            Ok(r) => r.status().as_u16(),
            Err(ureq::Error::StatusCode(code)) => code,
            Err(e) => panic!("{action}: {e}"),
        }
    }

    /// Waits for papy to exit; its status code.
    fn exit_code(mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code();
            }
            assert!(Instant::now() < deadline, "papy did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn out_of(state: &Value, node: &str) -> u64 {
    state["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == node))
        .and_then(|n| n["items_out"].as_u64())
        .unwrap_or(0)
}

#[test]
fn the_live_view_serves_json_and_prometheus_and_only_the_token_stops_the_run() {
    let dir = tempfile::tempdir().expect("dir");
    let live = Live::start(&endless(dir.path()));
    // The 1 000 failures come first; each is counted once it reaches the
    // output, a moment after the node's own counters.
    let s = live.wait_state("running with output and every failure", |s| {
        out_of(s, "show") > 1000 && s["errors"]["total"].as_u64() >= Some(1000)
    });
    assert_eq!(s["schema"], 1);
    assert_eq!(s["state"], "running");
    let names: Vec<&str> = s["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["square", "show"]);
    assert_eq!(s["pipes"][0][0], "square");
    assert_eq!(s["resources"][0]["name"], "pool");
    assert_eq!(s["resources"][0]["workers"], 2);
    assert_eq!(s["resources"][0]["kind"], "process");
    assert!(s["errors"]["total"].as_u64() >= Some(1000), "{s}");
    assert_eq!(s["errors"]["counts"][0]["node"], "square");
    assert_eq!(s["progress"]["unit"], "items");

    // /metrics, read by a Prometheus text-format parser.
    let text = ureq::get(&format!("{}/metrics", live.base))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let value = |metric: &str, label: &str, of: &str| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get(label) == Some(of))
            .unwrap_or_else(|| panic!("no {metric}{{{label}={of:?}}} in:\n{text}"));
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{metric} is not a number"),
        }
    };
    assert_eq!(value("papy_resource_workers", "resource", "pool"), 2.0);
    assert!(value("papy_node_items_out_total", "node", "show") > 1000.0);
    assert!(value("papy_node_failed_total", "node", "square") >= 1000.0);
    // The second worker may still be starting on a busy machine.
    assert!(value("papy_resource_worker_starts_total", "resource", "pool") >= 1.0);
    assert!(matches!(
        scrape
            .samples
            .iter()
            .find(|s| s.metric == "papy_node_items_in_total")
            .map(|s| &s.value),
        Some(prometheus_parse::Value::Counter(_))
    ));

    // Without the token, or with another, the controls refuse and the run goes on.
    assert_eq!(live.control("stop", None), 403);
    assert_eq!(
        live.control("stop", Some("0123456789abcdef0123456789abcdef")),
        403
    );
    assert_eq!(live.control("pause", None), 403);
    let before = out_of(&live.state(), "show");
    live.wait_state("still running", |s| {
        s["state"] == "running" && out_of(s, "show") > before
    });

    // With it: pause, resume, then a graceful stop.
    let token = live.token().to_string();
    assert_eq!(live.control("pause", Some(&token)), 200);
    live.wait_state("paused", |s| s["state"] == "paused");
    assert_eq!(live.control("resume", Some(&token)), 200);
    live.wait_state("running again", |s| s["state"] == "running");
    assert_eq!(live.control("stop", Some(&token)), 200);
    assert_eq!(
        live.exit_code(),
        Some(130),
        "a stop from the page exits as Ctrl-C"
    );
}

/// The page's nodes as the DOM shows them: `{name: [in, out, failed]}`.
const DOM_NODES: &str =
    "const o = {}; for (const g of document.querySelectorAll('#graph g.node')) \
     o[g.dataset.node] = [+g.dataset.in, +g.dataset.out, +g.dataset.failed]; return o;";

fn api_nodes(state: &Value) -> Value {
    let mut o = serde_json::Map::new();
    for n in state["nodes"].as_array().expect("nodes") {
        o.insert(
            n["name"].as_str().expect("name").to_string(),
            serde_json::json!([n["items_in"], n["items_out"], n["failed"]]),
        );
    }
    Value::Object(o)
}

#[test]
fn the_page_in_a_real_browser_shows_what_the_api_says_and_stops_only_with_the_token() {
    let dir = tempfile::tempdir().expect("dir");
    let live = Live::start(&endless(dir.path()));
    live.wait_state("running with output", |s| out_of(s, "show") > 1000);

    // A page opened without the token is read-only.
    let reader = Browser::start(false);
    reader.open(&live.base);
    reader.wait_for(
        "return document.querySelectorAll('#graph g.node').length === 2",
        "both nodes",
    );
    assert_eq!(
        reader.eval("return document.getElementById('stop').disabled"),
        true
    );
    let refused = reader.eval(
        "const x = new XMLHttpRequest(); x.open('POST', '/api/stop', false); x.send(); return x.status;",
    );
    assert_eq!(refused, 403);

    // Paused, the counts settle: the page shows the API's counts.
    let token = live.token().to_string();
    assert_eq!(live.control("pause", Some(&token)), 200);
    live.wait_state("paused", |s| s["state"] == "paused");
    let page = Browser::start(false);
    page.open(&live.url);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let api = api_nodes(&live.state());
        let dom = page.eval(DOM_NODES);
        if dom == api {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page shows {dom}, the API {api}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // The graph, the chart, the resources and the failures drew.
    assert_eq!(
        page.eval("return document.querySelectorAll('#graph path.pipe').length"),
        1
    );
    page.wait_for(
        "const p = document.querySelectorAll('#chart polyline.series'); \
         return p.length === 2 && [...p].every((l) => l.getAttribute('points').split(' ').length > 1)",
        "a throughput line per node",
    );
    assert_eq!(
        page.eval(
            "return document.querySelector('#resources tr[data-resource=pool]').dataset.workers"
        ),
        "2"
    );
    page.wait_for(
        "return document.getElementById('state').textContent === 'paused'",
        "the paused state",
    );
    page.wait_for(
        "return document.querySelectorAll('#errors tbody tr').length > 1",
        "the latest failures",
    );
    assert_eq!(
        page.eval("return document.getElementById('stop').disabled"),
        false
    );
    assert_eq!(live.control("resume", Some(&token)), 200);
    live.wait_state("running again", |s| s["state"] == "running");
    page.wait_for(
        "return document.getElementById('state').textContent === 'running'",
        "the run going on",
    );
    page.screenshot(&shots().join("live.png"));

    // The stop button, on the page with the token, stops the run gracefully.
    page.eval("document.getElementById('stop').click(); return true;");
    assert_eq!(live.exit_code(), Some(130));
}

// A scenario read top to bottom: its steps share state and splitting them
// would hide the order the test checks.
#[allow(clippy::too_many_lines)]
#[test]
fn the_report_opens_offline_with_the_runs_totals() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("finite.toml");
    std::fs::write(
        &file,
        format!(
            "[plugins]\nload = [\"math\"]\n[resources.pool]\nkind = \"process\"\nworkers = 2\n\
             [inputs.n]\nkind = \"range\"\nstart = -300\nend = 20000\n\
             [[pipers]]\nname = \"square\"\nresource = \"pool\"\ninputs = [\"n\"]\nworker = [\"math.fragile\"]\n\
             [[pipers]]\nname = \"show\"\ninputs = [\"square\"]\nworker = [\"papy.json_dumps\"]\n\
             [outputs.o]\npiper = \"show\"\npath = \"{}\"\n",
            dir.path().join("out.txt").display()
        ),
    )
    .expect("write");
    let report = dir.path().join("run.html");
    let stats = dir.path().join("stats.json");
    let out = papy()
        .args(["run", "-q", "--allow-errors"])
        .arg(&file)
        .arg("--report")
        .arg(&report)
        .arg("--stats-json")
        .arg(&stats)
        .output()
        .expect("papy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("json");
    let mut want = serde_json::Map::new();
    for (name, n) in stats["nodes"].as_object().expect("nodes") {
        want.insert(
            name.clone(),
            serde_json::json!([n["in"], n["out"], n["failed"]]),
        );
    }
    assert_eq!(want["square"][2], 300);
    let want_in_square = want["square"][0].clone();
    assert_eq!(want_in_square, 20300);
    assert!(stats["series"]["t"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));

    let page = Browser::start(true);
    page.open(&format!("file://{}", report.display()));
    page.wait_for(
        "return document.querySelectorAll('#graph g.node').length === 2",
        "both nodes",
    );
    assert_eq!(page.eval(DOM_NODES), Value::Object(want));
    assert_eq!(
        page.eval("return document.getElementById('state').textContent"),
        "finished"
    );
    // A worker timeline, and nothing fetched.
    assert!(
        page.eval("return document.querySelectorAll('#timeline rect.job').length")
            .as_u64()
            > Some(0)
    );
    // Every item of the pooled node ran in a job drawn on a worker's row.
    assert_eq!(
        page.eval(
            "return [...document.querySelectorAll('#timeline rect.job[data-node=square]')]\
             .reduce((n, r) => n + Number(r.dataset.items), 0)"
        ),
        want_in_square
    );
    assert!(page
        .eval("return [...document.querySelectorAll('#timeline text')].map((t) => t.textContent)")
        .as_array()
        .is_some_and(|rows| rows
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.starts_with("pool-proxy-")))));
    assert_eq!(
        page.eval("return performance.getEntriesByType('resource').length"),
        0
    );
    assert_eq!(
        page.eval("return document.getElementById('controls').hidden"),
        true
    );
    page.screenshot(&shots().join("report.png"));
}
