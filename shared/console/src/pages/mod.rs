//! The console's pages, as maud templates compiled into the binary. maud escapes every
//! interpolated value; nothing here uses `PreEscaped` on data from a run.

mod run;
mod runs;
mod start;
mod timeline;

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use crate::error::ConsoleError;

pub(crate) use run::run_fragment;
pub(crate) use run::{RunPage, run_page};
pub(crate) use runs::{RunsPage, StatusCount, runs_fragment, runs_page};
pub(crate) use start::{StartForm, start_page};

/// Longest JSON shown inline; the rest is cut (the CLI's `wf show --json` has it all).
const MAX_JSON_CHARS: usize = 20_000;

/// The page frame: title, stylesheet, script, top bar.
pub(crate) fn layout(title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · wf console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                header class="top" {
                    a class="brand" href="/" { "wf console" }
                    nav {
                        a href="/" { "Runs" }
                        a href="/archive" { "Archive" }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The page shown for a failed request: status, stable code, message, field.
pub(crate) fn error_page(error: &ConsoleError) -> Markup {
    let status = error.status();
    let body = html! {
        section class="error-page" data-code=(error.code()) {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("error")) }
            p class="error-code" { code { (error.code()) } }
            p class="error-message" { (error.public_message()) }
            @if let Some(field) = error.field() {
                p class="error-field" { "Field: " code { (field) } }
            }
            p { a href="/" { "Back to the runs" } }
        }
    };
    layout("Error", &body)
}

/// A status badge; `status` is a stored spelling such as `COMPLETED`.
pub(crate) fn badge(status: &str) -> Markup {
    html! { span class={ "badge s-" (status.to_lowercase()) } { (status) } }
}

/// Pretty JSON in a `<pre>`, cut at [`MAX_JSON_CHARS`].
pub(crate) fn json_block(value: &Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let cut = text.char_indices().nth(MAX_JSON_CHARS).map(|(i, _)| i);
    html! {
        pre class="json" {
            @if let Some(end) = cut {
                (text.get(..end).unwrap_or_default()) "\n… (cut; wf show --json has all of it)"
            } @else {
                (text)
            }
        }
    }
}

/// A time as `2026-01-31 09:00:00.123`.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// A duration in milliseconds, as `850 ms`, `12.4 s` or `3 min 20 s`.
pub(crate) fn duration_ms(ms: i64) -> String {
    match ms {
        i64::MIN..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{}.{} s", ms / 1000, (ms % 1000) / 100),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_400), "12.4 s");
        assert_eq!(duration_ms(200_000), "3 min 20 s");
    }

    #[test]
    fn json_is_escaped() {
        let html = json_block(&serde_json::json!({"x": "<script>alert(1)</script>"})).into_string();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
    }
}
