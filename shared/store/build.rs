//! Writes Mozilla's root certificates (`webpki-root-certs`) as one PEM bundle into
//! `OUT_DIR`, the form the SDK's TLS trust store takes, so the functions hand it over as it
//! is instead of encoding 150 certificates to PEM at every cold start
//! (`src/dynamodb/config.rs`).

use std::error::Error;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

fn main() -> Result<(), Box<dyn Error>> {
    let mut pem = String::new();
    for certificate in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let body = STANDARD.encode(certificate);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line)?);
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR")?);
    std::fs::write(out.join("mozilla-roots.pem"), pem)?;
    println!("cargo::rerun-if-changed=build.rs");
    Ok(())
}
