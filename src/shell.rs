//! Shell quoting, the one rule every command line tagstack builds for a node uses. Pure.

/// `s` quoted for a POSIX shell: one word, taken literally.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
