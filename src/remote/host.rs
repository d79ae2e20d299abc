//! A machine SSH connects to, as `remote` sees it: an alias for the ssh_config, where it is,
//! who logs in, and the host key to verify. Knows nothing of what the machine is for.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The `Host` alias in the environment's ssh_config; also names the node's log file.
    pub alias: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// `type base64`, when known: the only key ssh accepts for this host.
    pub host_key: Option<String>,
}
