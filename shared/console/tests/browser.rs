//! The console in a real browser: headless Debian Chromium driven through `ChromeDriver`
//! (`scripts/install-test-deps.sh` installs both). Opens the runs list, opens an approval
//! run parked on its signal, sees the graph with the waiting step, sends the signal from
//! the page and sees the run complete, saving screenshots under `target/console/`.
//!
//! A missing Chromium or `ChromeDriver` fails the test; only `WF_SKIP_BROWSER=1`, set on
//! purpose, skips it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;

use std::path::{Path, PathBuf};

use support::webdriver::{ChromeDriver, Session};
use support::{Harness, approval_input};
use wf_store::StepStatus;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = target.join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_sent_from_the_page_completes_a_waiting_run() {
    if std::env::var_os("WF_SKIP_BROWSER").is_some() {
        eprintln!("WF_SKIP_BROWSER is set: browser test skipped");
        return;
    }
    for binary in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: run scripts/install-test-deps.sh (apt packages chromium and chromium-driver)"
        );
    }

    // GIVEN a console on a free loopback port, and an approval run parked on its signal.
    let h = Harness::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(wf_console::serve(listener, h.router.clone()));
    let csrf = h.csrf().await;
    let started = h
        .post(
            "/workflows/approval/start",
            &[("csrf", &csrf), ("input", &approval_input().to_string())],
        )
        .await;
    let run_path = started.location().unwrap().to_owned();
    let run_id = run_path.trim_start_matches("/runs/").parse().unwrap();
    h.until(&run_id, |r| {
        r.steps
            .iter()
            .any(|s| s.status == StepStatus::Waiting && s.waiting_for.is_some())
    })
    .await;

    let driver = ChromeDriver::start(CHROMEDRIVER);
    let profile = tempfile::tempdir().unwrap();
    let browser = Session::open(&driver, CHROMIUM, profile.path()).await;
    let shots = screenshots_dir();

    // WHEN the list is opened and the run's link followed
    browser.goto(&format!("http://{address}/")).await;
    let link = browser
        .wait_for(&format!("tr[data-run=\"{run_id}\"] a.run-link"))
        .await;
    browser.screenshot(&shots.join("runs-list.png")).await;
    browser.click(&link).await;

    // THEN the run's graph shows the waiting step
    browser
        .wait_for("g[data-step=\"await-approval\"][data-status=\"waiting\"]")
        .await;
    assert!(browser.current_url().await.ends_with(&run_path));
    browser
        .find("g[data-step=\"submit\"][data-status=\"completed\"]")
        .await
        .unwrap();
    browser.screenshot(&shots.join("run-waiting.png")).await;

    // WHEN the signal is sent from the page
    let payload = browser
        .wait_for("#signal-form textarea[name=\"payload\"]")
        .await;
    browser
        .clear_and_type(&payload, r#"{"approver":"ada","approved":true}"#)
        .await;
    let send = browser.wait_for("#send-signal").await;
    browser.click(&send).await;

    // THEN the page (refreshing itself) shows the run completed, every step done.
    browser
        .wait_for("#run-status[data-status=\"COMPLETED\"]")
        .await;
    browser
        .wait_for("g[data-step=\"notify\"][data-status=\"completed\"]")
        .await;
    // Once ended, the page reloads itself without the actions that no longer apply.
    browser.wait_gone("#signal-form").await;
    browser
        .wait_for("#run-status[data-status=\"COMPLETED\"]")
        .await;
    browser.screenshot(&shots.join("run-completed.png")).await;
    let record = h.store.export_run(&run_id).await.unwrap();
    assert_eq!(record.run.status, wf_store::RunStatus::Completed);
    browser.close().await;
}
