//! Switches that make the emulator answer like the real services at their strangest
//! (`reference/real-service-facts.md`): shapes a client must tolerate but that the emulator's
//! defaults, written from the documentation, never produce.

use serde::{Deserialize, Serialize};

/// The scenario's `quirks`; every switch is off by default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quirks {
    /// The status of the answer to an expired, revoked or unknown token: 401 (default) or 403
    /// (a Microsoft engineer on PowerBI-Developer-Samples #15: "Forbidden … mostly it's because
    /// the AAD token is expired"; the 403 body is unrecorded, the emulator keeps its 401 body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_token_status: Option<u16>,
    /// Error bodies spell `Message`, not `message` (as ASP.NET's answer to a wrong route does:
    /// `{"Message":"No HTTP resource was found that matches the request URI '…'."}`).
    #[serde(default)]
    pub pascal_case_messages: bool,
    /// Gen1 transactions in the shape of Microsoft's documented sample: entries carry only `id`
    /// (every second one also `refreshType`), no `status`, `startTime` or `endTime`; the id
    /// still starts with the start time.
    #[serde(default)]
    pub sample_transactions: bool,
    /// History and transaction times with trailing zeros trimmed, as recorded (`…51.96Z`, and
    /// `…51Z` on a whole second), up to 7 digits: text order is then not time order.
    #[serde(default)]
    pub trimmed_times: bool,
    /// The clock moves only through `POST /_emulator/clock/advance`, from a whole second.
    #[serde(default)]
    pub frozen_clock: bool,
}

impl Quirks {
    /// Checks the values serde cannot; the error starts with the field name.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self.expired_token_status {
            None | Some(401 | 403) => Ok(()),
            Some(other) => Err(format!("expiredTokenStatus: {other} is not 401 or 403")),
        }
    }
}
