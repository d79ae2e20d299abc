//! The cluster stage's pure half: which nodes, the bootstrap token, the rendered kubeadm
//! configs and scripts, and the parsing of what nodes answer. Running them is `ops::cluster`'s
//! job, through `remote/`. Nothing here does I/O (except reading /dev/urandom for tokens).

pub mod addons;
pub mod console;
pub mod drain;
pub mod endpoint;
pub mod etcd;
pub mod model;
pub mod parse;
pub mod render;
pub mod token;
pub mod upgrade;
pub mod versions;

pub use model::{ClusterNode, static_nodes};

#[cfg(test)]
mod tests;
