//! The web console behind `wf console`: the runs list (filters, paging, counts by status,
//! self-refreshing), a run's page (its workflow's graph as SVG with steps coloured by
//! status, a timeline of attempts, each step's input, output and error, the run's state,
//! live updates), actions (start, cancel, signal, redrive) through the same [`Executor`]
//! as the CLI, and archived runs opened read-only.
//!
//! Invariants:
//! 1. Every page is rendered by compiled templates (maud), which escape every value, so
//!    nothing a run carries (inputs, outputs, errors, tags) becomes markup.
//! 2. Every state-changing request is a POST carrying the process's CSRF token, and
//!    nothing changes without it; with [`Console::read_only`] none is accepted at all.
//! 3. Requests whose `Host` is not a loopback name (or one allowed with
//!    [`Console::allow_host`]) are refused, so a DNS-rebinding page cannot read the
//!    console or its token.
//! 4. Steps of runs started, signalled or redriven here execute in this process (the
//!    executor's [`LocalRunner`]), as with `wf run`.

mod assets;
mod csrf;
mod driver;
mod error;
mod filters;
mod graph;
mod pages;
mod routes;

use std::sync::Arc;

use axum::Router;
use wf_archive::Archiver;
use wf_engine::{Executor, LocalRunner};

pub use error::ConsoleError;

use crate::csrf::CsrfToken;
use crate::driver::Driver;

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) executor: Arc<Executor>,
    pub(crate) read_only: bool,
    pub(crate) archive: Option<Archiver>,
    pub(crate) csrf: CsrfToken,
    pub(crate) driver: Driver,
    pub(crate) hosts: Vec<String>,
}

/// Builds the console's router.
#[must_use]
#[derive(Debug)]
pub struct Console {
    executor: Arc<Executor>,
    runner: LocalRunner,
    read_only: bool,
    archive: Option<Archiver>,
    hosts: Vec<String>,
}

impl Console {
    /// A console acting through `executor`; `runner` must hold the receiving end of the
    /// executor's `InProcessDispatcher`, so started and signalled runs execute here.
    pub fn new(executor: Arc<Executor>, runner: LocalRunner) -> Self {
        Self {
            executor,
            runner,
            read_only: false,
            archive: None,
            hosts: ["127.0.0.1", "localhost", "[::1]"]
                .map(str::to_owned)
                .to_vec(),
        }
    }

    /// With `true`, no action is offered or accepted (403 `read_only`).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Opens archived runs (`/archive?run=...`) through `archiver`.
    pub fn with_archive(mut self, archiver: Archiver) -> Self {
        self.archive = Some(archiver);
        self
    }

    /// Also accepts requests whose `Host` names `host` (e.g. the address given to
    /// `--bind`).
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.hosts.push(host.into());
        self
    }

    /// The router. Starts the task that executes dispatched steps, so it must be called
    /// inside a tokio runtime. Fails only when the OS gives no randomness for the CSRF
    /// token.
    pub fn into_router(self) -> Result<Router, getrandom::Error> {
        let state = AppState {
            executor: self.executor,
            read_only: self.read_only,
            archive: self.archive,
            csrf: CsrfToken::generate()?,
            driver: Driver::spawn(self.runner),
            hosts: self.hosts,
        };
        Ok(routes::router(Arc::new(state)))
    }
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}
