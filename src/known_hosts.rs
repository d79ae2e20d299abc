//! The OpenSSH known_hosts syntax, in one place for `remote` (which writes the environment's
//! file) and `config` (which checks the user's `ssh.known_hosts` at load): the name ssh looks a
//! host up by, and which line of a file lists it. Pure text in, answer out: it reads no file
//! and decides nothing about trust.
//!
//! Source: OpenSSH 9.2p1 (the client tagstack runs): sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT";
//! misc.c `put_host_port`; hostfile.c `hostkeys_foreach_file`, `check_markers`,
//! `match_maybe_hashed`, `host_hash`, `extract_salt`; match.c `match_hostname`,
//! `match_pattern_list`, `match_pattern`.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The name ssh looks `address` up by: plain for port 22, `[address]:port` otherwise
/// (`put_host_port`); also what `ssh-keyscan -p PORT` writes.
pub fn host_field(address: &str, port: u16) -> String {
    if port == 22 { address.to_string() } else { format!("[{address}]:{port}") }
}

/// The 1-based number of the first line of `text` whose host names match `host` (a
/// [`host_field`]) and that carries a key: a plain or `@cert-authority` line, never a
/// `@revoked` one. Host names are comma-separated patterns (`*`, `?`, `!` negation) or one
/// hashed name `|1|base64(salt)|base64(HMAC-SHA1(salt, host))`; ssh matches lowercased.
pub fn listing_line(text: &str, host: &str) -> Option<usize> {
    let host = host.to_ascii_lowercase();
    text.lines().enumerate().find_map(|(i, line)| lists(line, &host).then_some(i + 1))
}

fn lists(line: &str, host: &str) -> bool {
    let line = line.trim_start_matches([' ', '\t']);
    if line.is_empty() || line.starts_with('#') {
        return false;
    }
    let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
    let Some(mut names) = fields.next() else { return false };
    if names.starts_with('@') {
        // One marker at most; an unknown one makes ssh skip the line.
        if names != "@cert-authority" {
            return false;
        }
        let Some(next) = fields.next() else { return false };
        names = next;
    }
    // A line truncated before its key lists nothing.
    if fields.next().is_none() || fields.next().is_none() {
        return false;
    }
    if names.starts_with('|') { hashed_matches(names, host) } else { patterns_match(names, host) }
}

/// `match_maybe_hashed` for a hashed name: the salt is 20 bytes (SHA-1's size), the name
/// matches when the HMAC of `host` keyed by the salt is the stored hash.
fn hashed_matches(names: &str, host: &str) -> bool {
    let Some(rest) = names.strip_prefix("|1|") else { return false };
    let Some((salt, hash)) = rest.split_once('|') else { return false };
    let (Some(salt), Some(hash)) = (crate::base64::decode(salt), crate::base64::decode(hash)) else {
        return false;
    };
    if salt.len() != 20 {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else { return false };
    mac.update(host.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `match_hostname`: a negated pattern that matches rejects the line whatever else matched.
fn patterns_match(names: &str, host: &str) -> bool {
    let mut positive = false;
    for pattern in names.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if glob(host.as_bytes(), pattern.to_ascii_lowercase().as_bytes()) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// `match_pattern`: `*` any run of characters, `?` exactly one, anything else itself.
fn glob(s: &[u8], pattern: &[u8]) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(&s[i..], rest)),
        Some((c, rest)) => s.split_first().is_some_and(|(h, tail)| (*c == b'?' || c == h) && glob(tail, rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_uses_brackets_for_other_ports() {
        assert_eq!(host_field("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(host_field("10.0.0.1", 2222), "[10.0.0.1]:2222");
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB";

    #[test]
    fn plain_names_patterns_and_ports() {
        let text = format!(
            "# lab\n\n10.0.0.10,node1.lab {KEY}\n[10.0.0.11]:2222 {KEY} root@w1\n*.lab,!bad.lab {KEY}\n10.0.0.2? {KEY}\n"
        );
        assert_eq!(listing_line(&text, "10.0.0.10"), Some(3));
        assert_eq!(listing_line(&text, "NODE1.lab"), Some(3), "ssh matches lowercased");
        assert_eq!(listing_line(&text, "[10.0.0.11]:2222"), Some(4));
        assert_eq!(listing_line(&text, "10.0.0.11"), None, "the port is part of the name");
        assert_eq!(listing_line(&text, "[10.0.0.10]:2222"), None);
        assert_eq!(listing_line(&text, "w2.lab"), Some(5));
        assert_eq!(listing_line(&text, "bad.lab"), None, "a matching negation rejects the line");
        assert_eq!(listing_line(&text, "10.0.0.21"), Some(6));
        assert_eq!(listing_line(&text, "10.0.0.2"), None, "`?` is exactly one character");
    }

    #[test]
    fn markers_comments_and_truncated_lines() {
        let text = format!(
            "@revoked 10.0.0.10 {KEY}\n#10.0.0.11 {KEY}\n10.0.0.12\n10.0.0.13 ssh-ed25519\n@cert-authority *.lab {KEY}\n@bogus 10.0.0.14 {KEY}\n  \t10.0.0.15 {KEY}\n"
        );
        for (host, line) in [
            ("10.0.0.10", None),
            ("10.0.0.11", None),
            ("10.0.0.12", None),
            ("10.0.0.13", None),
            ("n1.lab", Some(5)),
            ("10.0.0.14", None),
            ("10.0.0.15", Some(7)),
        ] {
            assert_eq!(listing_line(&text, host), line, "{host}");
        }
    }

    /// Lines made by `ssh-keygen -H` (OpenSSH 9.2p1) from `10.0.0.11 KEY` and
    /// `[10.0.0.11]:2222 KEY`.
    #[test]
    fn hashed_names() {
        let text = format!("{HASHED_22} {KEY}\n{HASHED_2222} {KEY}\n|1|bm90MjBieXRlcw==|AAAA {KEY}\n");
        assert_eq!(listing_line(&text, "10.0.0.11"), Some(1));
        assert_eq!(listing_line(&text, "[10.0.0.11]:2222"), Some(2));
        assert_eq!(listing_line(&text, "10.0.0.12"), None);
        assert_eq!(listing_line(&text, "[10.0.0.11]:22"), None);
    }

    const HASHED_22: &str = "|1|e4XO+agRD+WLYmNuJzY+KbCE3ig=|mvDq+E469E3JqTFMMpBvO5FSNFo=";
    const HASHED_2222: &str = "|1|LeAuhmHg0Kag9X9ju8x3Rq6coYY=|+B9Tg6+WsB9bT3VvMNL1rR1mek8=";
}
