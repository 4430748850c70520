//! The CSRF token: 32 random bytes per console process, put in every form and required
//! on every state-changing request. Another site can make the browser send a POST to
//! 127.0.0.1, but cannot read a page of ours to learn the token.

use std::fmt;
use std::fmt::Write as _;

use crate::error::ConsoleError;

/// The per-process token.
#[derive(Clone)]
pub(crate) struct CsrfToken(String);

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfToken(..)")
    }
}

impl CsrfToken {
    /// A fresh random token, or an error when the OS has no randomness to give.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0_u8; 32];
        getrandom::fill(&mut bytes)?;
        let hex = bytes.iter().fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
        Ok(Self(hex))
    }

    /// The token's text, for forms.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// `Csrf` unless `sent` is this token (compared in constant time).
    pub(crate) fn verify(&self, sent: Option<&str>) -> Result<(), ConsoleError> {
        let sent = sent.ok_or(ConsoleError::Csrf)?;
        let matches = sent.len() == self.0.len()
            && sent
                .bytes()
                .zip(self.0.bytes())
                .fold(0_u8, |diff, (a, b)| diff | (a ^ b))
                == 0;
        if matches {
            Ok(())
        } else {
            Err(ConsoleError::Csrf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_passes() {
        let token = CsrfToken::generate().unwrap();
        assert!(token.verify(Some(token.as_str())).is_ok());
        assert!(token.verify(None).is_err());
        assert!(token.verify(Some("")).is_err());
        let mut other = token.as_str().to_owned();
        other.replace_range(0..1, if other.starts_with('a') { "b" } else { "a" });
        assert!(token.verify(Some(&other)).is_err());
    }
}
