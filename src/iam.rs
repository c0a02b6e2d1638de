//! The iam method: a signed `sts:GetCallerIdentity` request for Vault to
//! replay to STS.

use crate::cli::LoginArgs;
use crate::error::{Error, Result};
use crate::log::Log;

/// Collects the iam login fields.
///
/// # Errors
///
/// Always, for now: the iam method is not implemented yet.
pub fn login_fields(_args: &LoginArgs, _log: Log) -> Result<Vec<(&'static str, String)>> {
    Err(Error::usage(
        "--method iam is not implemented yet; use --method ec2",
    ))
}
