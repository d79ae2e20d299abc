//! SSH host keys from an EC2 instance's console output: cloud-init prints them between
//! `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----` at first boot.
//! Reading them there (through the EC2 API, authenticated) is how tagstack verifies a new
//! node's host key without trusting the first connection. Pure: `aws` reads the console and
//! is handed [`host_key`] to decide what in it is the node's key.

const BEGIN: &str = "-----BEGIN SSH HOST KEY KEYS-----";
const END: &str = "-----END SSH HOST KEY KEYS-----";
/// Preference order: the first kind found wins.
const KINDS: [&str; 4] = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa"];

/// All host keys (`type base64`) in the last complete block of the console text.
pub fn host_keys(console: &str) -> Vec<String> {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in console.lines() {
        if line.contains(BEGIN) {
            current = Some(Vec::new());
        } else if line.contains(END) {
            blocks.extend(current.take());
        } else if let Some(keys) = current.as_mut() {
            // Lines may carry a prefix ("ec2: ", a kernel timestamp); find the key type.
            let words: Vec<&str> = line.split_whitespace().collect();
            if let Some(i) = words.iter().position(|w| KINDS.contains(w))
                && let Some(b64) = words.get(i + 1)
            {
                keys.push(format!("{} {b64}", words[i]));
            }
        }
    }
    blocks.pop().unwrap_or_default()
}

/// The key tagstack pins: ed25519 if the node offers it.
pub fn preferred(keys: &[String]) -> Option<String> {
    KINDS.iter().find_map(|k| keys.iter().find(|key| key.split_whitespace().next() == Some(k)).cloned())
}

/// The host key tagstack pins from a console's text, once cloud-init has printed it.
pub fn host_key(console: &str) -> Option<String> {
    preferred(&host_keys(console))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of an Ubuntu 24.04 first boot on EC2 (keys shortened).
    const CONSOLE: &str = "\
[   12.123456] cloud-init[812]: Cloud-init v. 24.1 running 'modules:final'
ci-info: no authorized SSH keys fingerprints found for user ubuntu.
<14>Nov 22 10:00:01 cloud-init: #############################################################
<14>Nov 22 10:00:01 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----
<14>Nov 22 10:00:01 cloud-init: 256 SHA256:abc root@ip-10-20-1-4 (ECDSA)
<14>Nov 22 10:00:01 cloud-init: 256 SHA256:def root@ip-10-20-1-4 (ED25519)
<14>Nov 22 10:00:01 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----
<14>Nov 22 10:00:01 cloud-init: #############################################################
-----BEGIN SSH HOST KEY KEYS-----
ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= root@ip-10-20-1-4
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB root@ip-10-20-1-4
-----END SSH HOST KEY KEYS-----
[   13.000000] cloud-init[812]: Cloud-init v. 24.1 finished at Sat, 22 Nov 2026 10:00:01 +0000.
";

    #[test]
    fn host_key_is_the_preferred_key_of_the_last_block() {
        assert_eq!(host_key(CONSOLE), preferred(&host_keys(CONSOLE)));
        assert_eq!(
            host_key(CONSOLE).as_deref(),
            Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB")
        );
        assert_eq!(host_key("[    1.0] booting\n"), None);
    }

    #[test]
    fn finds_the_keys_and_prefers_ed25519() {
        let keys = host_keys(CONSOLE);
        assert_eq!(keys.len(), 2);
        assert_eq!(
            preferred(&keys).as_deref(),
            Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB")
        );
    }

    #[test]
    fn prefixed_lines_and_reboots() {
        let prefixed = "ec2: -----BEGIN SSH HOST KEY KEYS-----\nec2: ssh-rsa AAAAB3Nza root@x\nec2: -----END SSH HOST KEY KEYS-----\n";
        let text = format!("{prefixed}{CONSOLE}");
        // After a reboot the console shows the block again: the last complete one counts.
        assert_eq!(host_keys(&text).len(), 2);
        assert_eq!(host_keys(prefixed), ["ssh-rsa AAAAB3Nza"]);
        assert_eq!(preferred(&host_keys(prefixed)).as_deref(), Some("ssh-rsa AAAAB3Nza"));
    }

    #[test]
    fn nothing_before_cloud_init_printed_or_when_cut_off() {
        assert!(host_keys("Booting Linux...\n").is_empty());
        assert!(
            host_keys("-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAA root@x\n").is_empty(),
            "incomplete block"
        );
        assert_eq!(preferred(&[]), None);
    }
}
