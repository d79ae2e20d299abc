//! The per-environment SSH client files: `ssh_config` (one Host alias per node, strict host
//! key checking) and `known_hosts` (its syntax is `crate::known_hosts`'s). Pure text builders
//! plus the fingerprint of a host key.

use std::fmt::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::host::Host;
use crate::known_hosts::host_field;

pub fn known_hosts(nodes: &[Host]) -> String {
    let mut out = String::new();
    for n in nodes {
        if let Some(key) = &n.host_key {
            let _ = writeln!(out, "{} {key}", host_field(&n.address, n.port));
        }
    }
    out
}

/// (host, `type base64`) pairs of a known_hosts file written by [`known_hosts`]; comments,
/// markers and hashed hosts are skipped.
pub fn parse_known_hosts(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.starts_with('@') && !l.starts_with('|'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let host = parts.next()?;
            let key = format!("{} {}", parts.next()?, parts.next()?);
            Some((host.to_string(), key))
        })
        .collect()
}

/// `extra_known_hosts`: a user-supplied file trusted in addition to the pinned keys.
pub fn ssh_config(nodes: &[Host], identity: &Path, known_hosts: &Path, extra_known_hosts: Option<&Path>) -> String {
    let mut files = format!("\"{}\"", known_hosts.display());
    if let Some(extra) = extra_known_hosts {
        let _ = write!(files, " \"{}\"", extra.display());
    }
    let mut out = String::from("# Written by tagstack for this environment; `ssh -F <this file> NODE`.\n");
    for n in nodes {
        let _ = write!(
            out,
            "\nHost {name}\n  HostName {addr}\n  Port {port}\n  User {user}\n  IdentityFile \"{id}\"\n  IdentitiesOnly yes\n  UserKnownHostsFile {files}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  CheckHostIP no\n  BatchMode yes\n  ConnectTimeout 10\n  ServerAliveInterval 15\n  ServerAliveCountMax 4\n",
            name = n.alias,
            addr = n.address,
            port = n.port,
            user = n.user,
            id = identity.display(),
        );
    }
    out
}

/// OpenSSH's `SHA256:...` fingerprint of a public key line (`type base64 [comment]`).
pub fn fingerprint(key_line: &str) -> Option<String> {
    let b64 = key_line.split_whitespace().nth(1)?;
    let blob = crate::base64::decode(b64)?;
    let digest = Sha256::digest(&blob);
    Some(format!("SHA256:{}", crate::base64::encode_nopad(&digest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        // `ssh-keygen -lf` of this key prints the same
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB it@tagstack";
        assert_eq!(fingerprint(key).as_deref(), Some(EXPECTED));
        assert_eq!(fingerprint("garbage"), None);
    }

    const EXPECTED: &str = "SHA256:FwIh+Oy6U7wCEPWudb/467YR3L+riIokxsW4HOMchyk";

    #[test]
    fn known_hosts_round_trip() {
        let text =
            "# pinned by tagstack\n203.0.113.5 ssh-ed25519 AAAAC3Nz\n[10.0.0.1]:2222 ssh-rsa AAAAB3\n@revoked x y z\n";
        assert_eq!(
            parse_known_hosts(text),
            [
                ("203.0.113.5".to_string(), "ssh-ed25519 AAAAC3Nz".to_string()),
                ("[10.0.0.1]:2222".to_string(), "ssh-rsa AAAAB3".to_string()),
            ]
        );
    }
}
