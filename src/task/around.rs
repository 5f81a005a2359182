//! What happens around a refresh operation, whatever its kind: the preflight checks before it
//! (`preflight`), the alert payload written when it fails (`alertFile`, `alertFormat`), and the
//! timeline picture of a fleet or cascade (`timelineFile`).

use std::path::PathBuf;

use super::fields::Name;
use super::words::AlertFormat;
use crate::error::Error;

/// The validated options around a refresh operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Around {
    /// Run the preflight checks before triggering (default true).
    pub preflight: bool,
    /// Where to write an alert payload when the operation fails, and in which format.
    pub alert: Option<(PathBuf, AlertFormat)>,
    /// Where a fleet or cascade writes its timeline picture (HTML).
    pub timeline_file: Option<PathBuf>,
}

impl Default for Around {
    fn default() -> Self {
        Around {
            preflight: true,
            alert: None,
            timeline_file: None,
        }
    }
}

/// The fields as written.
#[derive(Debug, Clone, Default)]
pub struct AroundFields {
    /// `preflight`.
    pub preflight: Option<bool>,
    /// `alertFile`.
    pub alert_file: Option<Name>,
    /// `alertFormat`.
    pub alert_format: Option<AlertFormat>,
    /// `timelineFile`.
    pub timeline_file: Option<Name>,
}

impl AroundFields {
    /// Validates the fields; `many` says whether the operation refreshes many items (a fleet or
    /// a cascade), the only ones that may draw a timeline.
    pub fn validate(self, many: bool) -> Result<Around, Error> {
        if self.alert_format.is_some() && self.alert_file.is_none() {
            return Err(Error::task(
                "alertFormat",
                "needs `alertFile`",
                "add \"alertFile\": \"alert.json\" (the file the payload is written to)",
            ));
        }
        if self.timeline_file.is_some() && !many {
            return Err(Error::task(
                "timelineFile",
                "applies to a fleet (`targets`) or a cascade (`then: downstream`) only",
                "for one item, run the `timeline` operation over the operation log instead",
            ));
        }
        Ok(Around {
            preflight: self.preflight.unwrap_or(true),
            alert: self.alert_file.map(|f| {
                (
                    PathBuf::from(f.0),
                    self.alert_format.unwrap_or(AlertFormat::Teams),
                )
            }),
            timeline_file: self.timeline_file.map(|f| PathBuf::from(f.0)),
        })
    }
}
