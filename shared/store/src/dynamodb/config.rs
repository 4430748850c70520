//! The one AWS configuration loader of the store, the functions and the CLI.
//!
//! Cold start: parts of the SDK's defaults cost a Lambda init time (and binary size) for
//! nothing, so they are replaced where the outcome is the same:
//! 1. When the environment holds credentials (Lambda's does), the loader takes the
//!    environment provider directly instead of building the whole default chain (profile
//!    files, web identity, ECS, IMDS), which would answer from the environment anyway,
//!    since the environment is its first link.
//!    Likewise the region: when `AWS_REGION` or `AWS_DEFAULT_REGION` is set (Lambda sets
//!    both), the environment provider answers, as the default region chain's first link
//!    would, without building the chain (profile files, IMDS client).
//! 2. TLS is rustls with the `ring` provider, built here, instead of the SDK's default
//!    client with `aws-lc`: the same protocol versions and cipher suites, about 1.5 MB less
//!    code in every function. The SDK crates are built without `default-https-client`,
//!    so this loader is where every client gets its HTTP client.
//! 3. Inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set), TLS trusts Mozilla's root
//!    certificates compiled into the binary (`webpki-root-certs`, the set the Lambda
//!    image's CA bundle is built from, written as one PEM bundle by `build.rs`) instead of
//!    reading and parsing every file of the system's certificate folders, which the SDK
//!    does once per client built. The trust store is made with the first connector (the
//!    first request), where the roots are parsed anyway, so the init neither encodes nor
//!    copies them. TLS still verifies every server. `SSL_CERT_FILE` or `SSL_CERT_DIR` set
//!    brings back the system's store.
//!
//! Everywhere else (the CLI, tests, a function run by hand) the credential chain and the
//! trust store are the SDK's defaults (the system's roots).

use std::ffi::OsString;
use std::sync::OnceLock;

use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};

/// Loads the AWS configuration the standard way (credential chain, region,
/// `AWS_ENDPOINT_URL*` for emulators) with the store's retry policy (up to 8 attempts per
/// request, with exponential backoff and jitter for throttling) and the HTTPS client of
/// `https_client`. Load it once per process and build every client (DynamoDB, SQS, S3)
/// from it.
pub async fn load_aws_config() -> SdkConfig {
    let var = |name: &str| std::env::var_os(name);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(8))
        .http_client(https_client(uses_compiled_in_roots(var)));
    if credentials_in_environment(var) {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    if region_in_environment(var) {
        loader = loader.region(EnvironmentVariableRegionProvider::new());
    }
    loader.load().await
}

/// Whether the default chain's first link, the environment, would answer: both keys set
/// and not empty.
fn credentials_in_environment(var: impl Fn(&str) -> Option<OsString>) -> bool {
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .into_iter()
        .all(|name| var(name).is_some_and(|value| !value.is_empty()))
}

/// Whether the default region chain's first link, the environment, would answer.
fn region_in_environment(var: impl Fn(&str) -> Option<OsString>) -> bool {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .any(|name| var(name).is_some_and(|value| !value.is_empty()))
}

/// Inside Lambda, unless the deployment points TLS at a certificate file or folder.
fn uses_compiled_in_roots(var: impl Fn(&str) -> Option<OsString>) -> bool {
    var("AWS_LAMBDA_FUNCTION_NAME").is_some_and(|v| !v.is_empty())
        && var("SSL_CERT_FILE").is_none()
        && var("SSL_CERT_DIR").is_none()
}

/// The roots TLS trusts: the compiled-in Mozilla set, or the system's (the SDK's default,
/// also the fallback should the compiled-in set not build).
fn tls_context(compiled_in_roots: bool) -> TlsContext {
    if compiled_in_roots
        && let Ok(tls) = TlsContext::builder()
            .with_trust_store(compiled_in_trust_store())
            .build()
    {
        return tls;
    }
    TlsContext::default()
}

/// Mozilla's roots (`webpki-root-certs`) as PEM, written by `build.rs`.
const MOZILLA_ROOTS_PEM: &str = include_str!(concat!(env!("OUT_DIR"), "/mozilla-roots.pem"));

/// Mozilla's roots, and nothing from the system.
fn compiled_in_trust_store() -> TrustStore {
    TrustStore::empty().with_pem_certificate(MOZILLA_ROOTS_PEM)
}

/// The SDK's default HTTPS client (hyper, rustls, its cipher suites, proxy settings from
/// the environment) with the `ring` crypto provider and the given roots.
///
/// Cold start: as each SDK client is built, the SDK builds a connector without runtime
/// components only to throw it away (to load the system's roots early), which with TLS
/// means parsing every root certificate once per client, a fifth of a function's init. That
/// call gets a plain connector instead; the connector requests use is built with
/// components, once per timeout setting and shared by every client of the configuration,
/// and is always TLS-capable. Were the SDK ever to send a request through a component-less
/// connector, an `https` request would fail rather than go out unencrypted.
fn https_client(compiled_in_roots: bool) -> SharedHttpClient {
    let tls = OnceLock::new();
    Builder::new().build_with_connector_fn(move |settings, components| {
        let Some(components) = components else {
            return ConnectorBuilder::default().build_http();
        };
        let tls = tls.get_or_init(|| tls_context(compiled_in_roots));
        let mut connector = ConnectorBuilder::default()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .tls_context(tls.clone());
        connector.set_connector_settings(settings.cloned());
        connector.set_sleep_impl(components.sleep_impl());
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn environment_credentials_need_both_keys_set() {
        let cases: [(&[(&str, &str)], bool); 4] = [
            (
                &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")],
                true,
            ),
            (&[("AWS_ACCESS_KEY_ID", "a")], false),
            (
                &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "")],
                false,
            ),
            (&[], false),
        ];
        for (vars, expected) in cases {
            assert_eq!(
                credentials_in_environment(lookup(vars)),
                expected,
                "{vars:?}"
            );
        }
    }

    #[test]
    fn the_environment_region_needs_either_variable_set() {
        let cases: [(&[(&str, &str)], bool); 5] = [
            (&[("AWS_REGION", "ap-southeast-2")], true),
            (&[("AWS_DEFAULT_REGION", "ap-southeast-2")], true),
            (
                &[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "us-east-1")],
                true,
            ),
            (&[("AWS_REGION", "")], false),
            (&[], false),
        ];
        for (vars, expected) in cases {
            assert_eq!(region_in_environment(lookup(vars)), expected, "{vars:?}");
        }
    }

    #[test]
    fn compiled_in_roots_only_inside_lambda_without_a_certificate_override() {
        let cases: [(&[(&str, &str)], bool); 4] = [
            (&[("AWS_LAMBDA_FUNCTION_NAME", "f")], true),
            (&[], false),
            (
                &[
                    ("AWS_LAMBDA_FUNCTION_NAME", "f"),
                    ("SSL_CERT_FILE", "/x.pem"),
                ],
                false,
            ),
            (
                &[
                    ("AWS_LAMBDA_FUNCTION_NAME", "f"),
                    ("SSL_CERT_DIR", "/certs"),
                ],
                false,
            ),
        ];
        for (vars, expected) in cases {
            assert_eq!(uses_compiled_in_roots(lookup(vars)), expected, "{vars:?}");
        }
    }

    #[test]
    fn compiled_in_roots_are_valid_pem_and_build_a_connector() {
        use base64::Engine as _;

        // Every root of webpki-root-certs, in order, each one PEM block.
        let blocks: Vec<&str> = MOZILLA_ROOTS_PEM
            .split_terminator("-----END CERTIFICATE-----\n")
            .collect();
        assert_eq!(blocks.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        for (block, der) in blocks.iter().zip(webpki_root_certs::TLS_SERVER_ROOT_CERTS) {
            let body = block
                .strip_prefix("-----BEGIN CERTIFICATE-----\n")
                .expect("a PEM header");
            assert!(body.lines().all(|line| line.len() <= 64));
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(body.replace('\n', ""))
                .expect("base64");
            assert_eq!(decoded.as_slice(), der.as_ref());
        }
        let store = compiled_in_trust_store();
        assert!(format!("{store:?}").contains("enable_native_roots: false"));
        assert!(
            TlsContext::builder()
                .with_trust_store(store)
                .build()
                .is_ok()
        );
        // Building a connector parses every root (the SDK panics on one it cannot parse).
        let _connector = ConnectorBuilder::default()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .tls_context(tls_context(true))
            .build();
    }
}
