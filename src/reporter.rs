//! The seam through which libraries report progress. `aws/` and `ops/` call it; only `ui/`
//! implements it (spinners, plain lines or nothing). Nothing here prints.

/// Progress of long-running steps, keyed by a short stable id such as `vpc` or `subnet/10.0.1.0/24`.
pub trait Reporter: Send + Sync {
    /// A step began; `message` says what it is doing.
    fn start(&self, key: &str, message: &str);
    /// The step changed what it is doing (e.g. "retrying: DependencyViolation").
    fn update(&self, key: &str, message: &str);
    /// The step finished; `message` is its outcome.
    fn finish(&self, key: &str, message: &str);
    /// The step failed; the error itself is returned to the caller, this only ends the line.
    fn fail(&self, key: &str, message: &str);
    /// A free-standing remark (warnings, hints).
    fn note(&self, message: &str);
}

/// Reports nothing: for tests and for callers that only want the result.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn start(&self, _: &str, _: &str) {}
    fn update(&self, _: &str, _: &str) {}
    fn finish(&self, _: &str, _: &str) {}
    fn fail(&self, _: &str, _: &str) {}
    fn note(&self, _: &str) {}
}
