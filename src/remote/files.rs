//! The per-environment SSH client files: `ssh_config` (one Host alias per node, strict host
//! key checking) and `known_hosts`. Pure text builders plus the fingerprint of a host key.

use std::fmt::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::cluster::ClusterNode;

/// `known_hosts` host field: plain for port 22, `[host]:port` otherwise.
pub fn host_field(address: &str, port: u16) -> String {
    if port == 22 { address.to_string() } else { format!("[{address}]:{port}") }
}

pub fn known_hosts(nodes: &[ClusterNode]) -> String {
    let mut out = String::new();
    for n in nodes {
        if let Some(key) = &n.host_key {
            let _ = writeln!(out, "{} {key}", host_field(&n.address, n.port));
        }
    }
    out
}

/// `extra_known_hosts`: a user-supplied file trusted in addition to the pinned keys.
pub fn ssh_config(
    nodes: &[ClusterNode],
    identity: &Path,
    known_hosts: &Path,
    extra_known_hosts: Option<&Path>,
) -> String {
    let mut files = format!("\"{}\"", known_hosts.display());
    if let Some(extra) = extra_known_hosts {
        let _ = write!(files, " \"{}\"", extra.display());
    }
    let mut out = String::from("# Written by tagstack for this environment; `ssh -F <this file> NODE`.\n");
    for n in nodes {
        let _ = write!(
            out,
            "\nHost {name}\n  HostName {addr}\n  Port {port}\n  User {user}\n  IdentityFile \"{id}\"\n  IdentitiesOnly yes\n  UserKnownHostsFile {files}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  CheckHostIP no\n  BatchMode yes\n  ConnectTimeout 10\n  ServerAliveInterval 15\n  ServerAliveCountMax 4\n",
            name = n.name,
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
    fn known_hosts_uses_brackets_for_other_ports() {
        assert_eq!(host_field("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(host_field("10.0.0.1", 2222), "[10.0.0.1]:2222");
    }
}
