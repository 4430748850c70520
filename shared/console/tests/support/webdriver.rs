//! A small `WebDriver` client (the W3C protocol over HTTP, with hyper) and a `ChromeDriver`
//! process stopped on drop: just what the browser test needs, without a `WebDriver` crate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code,
    unreachable_pub,
    reason = "test support: failures should stop the test loudly"
)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Bytes;
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `ChromeDriver` on a free port, killed on drop.
pub struct ChromeDriver {
    child: Child,
    pub port: u16,
}

impl ChromeDriver {
    pub fn start(binary: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {binary}: {e}"));
        Self { child, port }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `WebDriver` session.
pub struct Session {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    id: String,
}

async fn call(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value["value"].clone())
    } else {
        Err(format!("{method} {url}: {status} {value}"))
    }
}

impl Session {
    /// Waits (polling, no deadline) until the driver answers, then opens headless Chromium
    /// with the flags this machine's closed network needs.
    pub async fn open(driver: &ChromeDriver, chromium: &str, profile: &std::path::Path) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        let base = format!("http://127.0.0.1:{}", driver.port);
        while call(&client, "GET", &format!("{base}/status"), None)
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,1100".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args }
        } } });
        let created = call(
            &client,
            "POST",
            &format!("{base}/session"),
            Some(capabilities),
        )
        .await
        .unwrap();
        let id = created["sessionId"].as_str().unwrap().to_owned();
        Self { client, base, id }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.id)
    }

    pub async fn goto(&self, url: &str) {
        call(
            &self.client,
            "POST",
            &self.url("/url"),
            Some(json!({ "url": url })),
        )
        .await
        .unwrap();
    }

    /// The element `css` selects now, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let body = json!({ "using": "css selector", "value": css });
        call(&self.client, "POST", &self.url("/element"), Some(body))
            .await
            .ok()
            .and_then(|v| v[ELEMENT_KEY].as_str().map(str::to_owned))
    }

    /// Waits (polling, no deadline) until `css` selects an element.
    pub async fn wait_for(&self, css: &str) -> String {
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (polling, no deadline) until `css` selects nothing.
    pub async fn wait_gone(&self, css: &str) {
        while self.find(css).await.is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, element: &str) {
        call(
            &self.client,
            "POST",
            &self.url(&format!("/element/{element}/click")),
            Some(json!({})),
        )
        .await
        .unwrap();
    }

    pub async fn clear_and_type(&self, element: &str, text: &str) {
        call(
            &self.client,
            "POST",
            &self.url(&format!("/element/{element}/clear")),
            Some(json!({})),
        )
        .await
        .unwrap();
        call(
            &self.client,
            "POST",
            &self.url(&format!("/element/{element}/value")),
            Some(json!({ "text": text })),
        )
        .await
        .unwrap();
    }

    pub async fn current_url(&self) -> String {
        call(&self.client, "GET", &self.url("/url"), None)
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let data = call(&self.client, "GET", &self.url("/screenshot"), None)
            .await
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    pub async fn close(self) {
        let _ = call(&self.client, "DELETE", &self.url(""), None).await;
    }
}
