//! The one list of error codes the functions answer with. An [`ApiError`](crate::ApiError)
//! can only carry an [`ErrorCode`], so no handler can answer with a code missing here; each
//! code has one HTTP status, the field it names, what it means and which functions return
//! it. The README's error table is [`ErrorCode::markdown_table`], and a test fails when the
//! two differ.
//!
//! Codes are stable: never renamed once shipped. Errors of the engine and the store keep
//! their own code at the edge ([`ErrorCode::parse`]); the store's `invalid_input` (an
//! argument it refuses) is answered as `invalid_request`, since `invalid_input` is the
//! engine's 422 for a workflow input that does not fit.

macro_rules! error_codes {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $code:literal, $status:literal, field: $field:literal,
            from: $from:literal, $meaning:literal;
    )*) => {
        /// A stable error code, with its status, field, meaning and sources.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the README's order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The `snake_case` code sent as `code` (HTTP) or `errorType` (Lambda errors).
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $code,)* }
            }

            /// The HTTP status (4xx: the caller's to fix; 5xx: retry later).
            pub fn status(self) -> u16 {
                match self { $(Self::$variant => $status,)* }
            }

            /// The `field` the error names (Markdown; empty when none).
            pub fn field(self) -> &'static str {
                match self { $(Self::$variant => $field,)* }
            }

            /// Which functions can return it (Markdown).
            pub fn sources(self) -> &'static str {
                match self { $(Self::$variant => $from,)* }
            }

            /// What it means and what to do (Markdown).
            pub fn meaning(self) -> &'static str {
                match self { $(Self::$variant => $meaning,)* }
            }
        }
    };
}

error_codes! {
    /// The body is not JSON.
    MalformedJson = "malformed_json", 400, field: "`body`",
        from: "start-run (HTTP), runs-api", "the body is not JSON";
    /// A base64 body does not decode.
    MalformedBody = "malformed_body", 400, field: "`body`",
        from: "start-run (HTTP), runs-api", "a base64-encoded body does not decode";
    /// A payload shaped like an HTTP API request that is not one.
    MalformedRequest = "malformed_request", 400, field: "",
        from: "start-run",
        "the payload looks like an HTTP API request (it has `requestContext.http`) but is not a payload format 2.0 request";
    /// A missing, unknown or mistyped field of a body.
    InvalidRequest = "invalid_request", 400, field: "the field, e.g. `workflowId`, `tags.env`, `idempotencyKey`",
        from: "start-run, runs-api",
        "a missing, unknown or mistyped field; over 50 tags or a label too long; `retentionDays` outside 1..3650; an idempotency key the store refuses";
    /// A bad query or path parameter.
    InvalidParameter = "invalid_parameter", 400, field: "`runId`, `workflowId`, `status`, `tag`, `from`, `to` or `limit`",
        from: "runs-api", "a path or query parameter is malformed or out of range";
    /// A listing cursor this deployment did not issue for these filters.
    InvalidCursor = "invalid_cursor", 400, field: "`cursor`",
        from: "runs-api",
        "the cursor was altered, cut short, issued by another deployment, or comes back with other filters than the listing that issued it: list again without it";
    /// An event from a source the function does not serve.
    UnsupportedEvent = "unsupported_event", 400, field: "`detail-type` (start-run), `Records[i].eventSource` (execute-step)",
        from: "start-run (EventBridge), execute-step",
        "start-run: an EventBridge event whose detail-type is not `Start Workflow Run`; execute-step: anything but SQS records and the sweep schedule (S3, SNS, DynamoDB stream records, ...), refused as a whole";
    /// An SQS event that does not parse.
    MalformedEvent = "malformed_event", 400, field: "`Records`",
        from: "execute-step", "`Records` is not an array of SQS records";
    /// No such run.
    RunNotFound = "run_not_found", 404, field: "`runId`",
        from: "runs-api", "no run with this id (never started, or expired and archived)";
    /// No such workflow.
    UnknownWorkflow = "unknown_workflow", 404, field: "`workflowId`",
        from: "start-run", "no such workflow in this deployment";
    /// An item an action needs is gone.
    NotFound = "not_found", 404, field: "",
        from: "runs-api", "an item the action needs disappeared meanwhile (the run expired)";
    /// No such route.
    RouteNotFound = "route_not_found", 404, field: "",
        from: "runs-api", "no route for this path";
    /// The route exists with another method.
    MethodNotAllowed = "method_not_allowed", 405, field: "",
        from: "start-run (HTTP), runs-api", "the route exists, with another method";
    /// The idempotency key was used with another input.
    IdempotencyConflict = "idempotency_conflict", 409, field: "`idempotencyKey`",
        from: "start-run", "the key was used before with another input or workflow";
    /// The action does not fit the run's status.
    InvalidState = "invalid_state", 409, field: "",
        from: "runs-api", "the run's status does not allow the action (cancel an ended run, redrive one that did not fail)";
    /// A concurrent change won.
    Conflict = "conflict", 409, field: "",
        from: "start-run, runs-api", "the run changed concurrently: read it again and retry";
    /// A payload over the store's limit.
    TooLarge = "too_large", 413, field: "what is too large, e.g. `input`",
        from: "start-run, runs-api", "the input (or a signal payload) is over 10 MiB (350 KB where no payload bucket is configured): pass larger data by reference";
    /// The input does not fit the workflow.
    InvalidInput = "invalid_input", 422, field: "the JSON path, e.g. `input.lines[0].quantity`",
        from: "start-run", "the input does not fit the first step's input type";
    /// The run's workflow never waits for this signal.
    UnknownSignal = "unknown_signal", 422, field: "`name` (the path's signal name)",
        from: "runs-api", "the run's workflow never waits for a signal of this name: it would wake nothing, so nothing is stored";
    /// A fault of ours with no better code.
    InternalError = "internal_error", 500, field: "",
        from: "all", "an answer did not serialise, or an unexpected engine error (logged): retry later";
    /// A stored item does not decode.
    CorruptItem = "corrupt_item", 500, field: "",
        from: "all", "a stored item does not decode (logged with the attribute)";
    /// The store failed.
    BackendError = "backend_error", 500, field: "",
        from: "all", "the table could not be reached or refused the call: retry later";
    /// The step queue refused a task.
    DispatchFailed = "dispatch_failed", 500, field: "",
        from: "runs-api (signal, redrive), execute-step (sweep)", "the step queue refused a task: retry later";
    /// The store is throttled.
    Throttled = "throttled", 503, field: "",
        from: "all", "the table is throttled: retry later";
}

impl ErrorCode {
    /// The code named `code`, if the list has it.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
    }

    fn row(code: Self) -> String {
        format!(
            "| {} | `{}` | {} | {} | {} |\n",
            code.status(),
            code.as_str(),
            code.meaning(),
            code.field(),
            code.sources()
        )
    }

    /// The README's error table, one row per code.
    pub fn markdown_table() -> String {
        let mut table =
            String::from("| status | code | meaning | field | from |\n|---|---|---|---|---|\n");
        for code in Self::ALL {
            table.push_str(&Self::row(*code));
        }
        table
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert_eq!(ErrorCode::parse(name), Some(*code));
            assert!((400..600).contains(&code.status()), "{name}");
            assert!(!code.meaning().is_empty() && !code.sources().is_empty());
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    #[test]
    fn the_readme_lists_every_code_as_the_code_does() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("read README.md");
        let table = ErrorCode::markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's error table differs from wf_lambda::ErrorCode; paste this table into \
             its \"Error codes\" section:\n\n{table}"
        );
    }
}
