//! What every command works in: the environment's spec, the AWS connection (made on first
//! use, so a static environment or a config error never touches AWS) and the reporter.
//! Holds no decision of its own.

use tokio::sync::OnceCell;

use crate::aws::{Aws, Connection, Ctx};
use crate::config::{Provider, Spec};
use crate::reporter::Reporter;

pub struct Env<'a> {
    pub spec: &'a Spec,
    pub reporter: &'a dyn Reporter,
    connection: Option<&'a Connection>,
    aws: OnceCell<Aws>,
}

impl<'a> Env<'a> {
    pub fn new(spec: &'a Spec, connection: &'a Connection, reporter: &'a dyn Reporter) -> Self {
        Self { spec, reporter, connection: Some(connection), aws: OnceCell::new() }
    }

    /// With clients the caller made (a library user's own, or a test's pointed at an emulator).
    pub fn with_aws(spec: &'a Spec, aws: Aws, reporter: &'a dyn Reporter) -> Self {
        Self { spec, reporter, connection: None, aws: OnceCell::new_with(Some(aws)) }
    }

    /// The AWS clients, connected on the first call.
    pub async fn aws(&self) -> &Aws {
        // Only `new` leaves the cell empty, and it always has a connection: the default is
        // never used, and the clone happens once, not on every call.
        self.aws.get_or_init(|| async { Aws::connect(&self.connection.cloned().unwrap_or_default()).await }).await
    }

    /// What a mutating AWS call needs, reporting to this environment's reporter.
    pub async fn ctx(&self) -> Ctx<'_> {
        Ctx::new(self.aws().await, &self.spec.id, self.spec.timeouts, self.reporter)
    }

    pub fn is_static(&self) -> bool {
        matches!(self.spec.provider, Provider::Static { .. })
    }
}
