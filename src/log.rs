//! One-line stderr messages.
//!
//! Writes ignore errors on purpose: a closed stderr (a broken pipe in a
//! shell pipeline) must not abort a login that is otherwise fine.

use std::fmt::Display;
use std::io::Write;

/// Where progress and warnings go.
#[derive(Clone, Copy, Debug)]
pub struct Log {
    /// Print progress steps, not only warnings and errors.
    pub verbose: bool,
}

impl Log {
    /// Prints a progress step when `--verbose` is on.
    ///
    /// Callers pass only values that are safe to show: endpoints, paths,
    /// statuses, role and mount names, never a secret.
    pub fn step(&self, message: impl Display) {
        if self.verbose {
            let _ = writeln!(std::io::stderr(), "vault-stork: {message}");
        }
    }

    /// Prints a warning, whether or not `--verbose` is on.
    pub fn warn(&self, message: impl Display) {
        let _ = writeln!(std::io::stderr(), "vault-stork: warning: {message}");
    }
}
