//! The web UI in a real headless Chromium (through chromedriver and WebDriver): it loads,
//! lists a running session's resources with their statuses, shows a failing resource's
//! error, and a click on trigger runs the resource and its new log lines appear, escaped.
//! A screenshot is saved under `target/test-artifacts/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`): required in CI, skipped with a message elsewhere.

mod engine_support;

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use engine_support::*;
use fantoccini::{Client, ClientBuilder, Locator};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver in its own process group, killed with its browsers on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Option<Driver> {
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs {CHROMIUM} and {CHROMEDRIVER} (Debian: chromium chromium-driver)"
            );
            eprintln!(
                "SKIPPED: web UI browser tests need {CHROMIUM} and {CHROMEDRIVER} \
                 (apt install chromium chromium-driver)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let ready = wait_until(|| std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        assert!(ready.is_some(), "chromedriver did not listen");
        Some(Driver { child, port })
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,800"],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("start a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group we created.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Waits for `css` to match, with a message naming it.
async fn element(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(WAIT)
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

/// The texts of the rendered log lines.
async fn log_texts(browser: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for line in browser
        .find_all(Locator::Css("#log .log-line"))
        .await
        .unwrap_or_default()
    {
        out.push(line.text().await.unwrap_or_default());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_lists_resources_triggers_and_streams_logs() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let p = Project::new(
        r#"
local_resource('good', cmd='echo all good', labels=['app'])
local_resource('broken', cmd='echo about to fail; exit 7', labels=['app'])
local_resource('man', cmd='echo "<b>manual run</b> $(date +%N)"', trigger_mode=TRIGGER_MODE_MANUAL,
  auto_init=False, labels=['tools'])
"#,
    );
    let up = Up::start(&p, &[]);
    let url = format!("http://localhost:{}/", up.port());
    let browser = driver.browser().await;
    browser.goto(&url).await.expect("open the UI");

    element(&browser, r#"[data-resource="good"][data-status="ok"]"#).await;
    element(&browser, r#"[data-resource="man"][data-status="none"]"#).await;
    let broken = element(&browser, r#"[data-resource="broken"][data-status="error"]"#).await;
    let error = broken
        .find(Locator::Css(".resource-error"))
        .await
        .expect("error element");
    let error_text = error.text().await.unwrap_or_default();
    assert!(error_text.contains('7'), "error shown: {error_text:?}");
    let connection = element(&browser, "#connection").await;
    assert_eq!(connection.text().await.unwrap_or_default(), "connected");

    // Trigger the manual resource, then look at its log.
    element(&browser, r#"[data-resource="man"] [data-action="trigger"]"#)
        .await
        .click()
        .await
        .expect("click trigger");
    element(&browser, r#"[data-resource="man"][data-status="ok"]"#).await;
    element(&browser, r#"[data-resource="man"] .resource-name"#)
        .await
        .click()
        .await
        .expect("select man");
    element(&browser, r#"#log .log-line[data-span="man"]"#).await;
    let run = wait_until_async(&browser, |texts| {
        texts.iter().any(|t| t.contains("<b>manual run</b>"))
    })
    .await;
    assert!(
        run.iter().all(|t| !t.contains("all good")),
        "only man's lines in its view: {run:?}"
    );
    // Process output is text, never markup.
    let bold = browser
        .find_all(Locator::Css("#log b"))
        .await
        .unwrap_or_default();
    assert!(bold.is_empty(), "output was rendered as HTML");

    // A second trigger appends new lines live.
    let runs_before = run.iter().filter(|t| t.contains("manual run")).count();
    element(&browser, r#"[data-resource="man"] [data-action="trigger"]"#)
        .await
        .click()
        .await
        .expect("click trigger again");
    wait_until_async(&browser, |texts| {
        texts.iter().filter(|t| t.contains("manual run")).count() > runs_before
    })
    .await;

    let png = browser.screenshot().await.expect("screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    std::fs::write(dir.join("web-ui.png"), png).expect("save screenshot");
    browser.close().await.expect("close the browser");
}

/// Polls the rendered log until `pred` holds; returns its lines then.
async fn wait_until_async(browser: &Client, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
    let start = std::time::Instant::now();
    loop {
        let texts = log_texts(browser).await;
        if pred(&texts) {
            return texts;
        }
        assert!(
            start.elapsed() < WAIT,
            "log never matched; it shows {texts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
