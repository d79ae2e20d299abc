//! The only code that speaks SSH: the environment's ssh_config/known_hosts, sessions to every
//! node with verified host keys, uploads and streamed script runs. Reports through
//! [`crate::reporter::Reporter`]; never prints; decides nothing about Kubernetes.

mod error;
mod files;
mod fleet;
mod host;

pub use error::{RemoteError, RemoteErrors};
pub use files::{fingerprint, known_hosts, parse_known_hosts, ssh_config};
pub use fleet::{EnvFiles, Fleet, Output};
pub use host::Host;
