//! The closed lists of words task fields take (refresh types, policies, notify options…):
//! matched case-insensitively, as they always were, sent and published in the schema in their
//! canonical spelling.

use super::{IfRunning, OnTimeout};

/// Gives a closed list of words serde, schema and lookup by name, case-insensitively.
macro_rules! words {
    ($ty:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in the schema's order.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];

            /// The canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $text),+ }
            }

            /// Looks `text` up case-insensitively.
            pub fn from_name(text: &str) -> Option<$ty> {
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(text))
            }

            /// Like [`Self::from_name`], as a task error naming `field`.
            #[allow(dead_code)]
            pub(crate) fn parse(field: &str, text: &str) -> Result<$ty, crate::error::Error> {
                Self::from_name(text).ok_or_else(|| {
                    crate::error::Error::task(field, format!("`{text}` is not allowed"), Self::help())
                })
            }

            fn help() -> String {
                let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                format!("one of: {}", all.join(", "))
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::from_name(&text).ok_or_else(|| {
                    $crate::task::json::invalid(format!("`{text}` is not allowed"), Self::help())
                })
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                schemars::json_schema!({"type": "string", "enum": all})
            }
        }
    };
}
pub(crate) use words;

words!(IfRunning {
    Attach = "attach",
    Skip = "skip",
    Fail = "fail",
});

words!(OnTimeout {
    Leave = "leave",
    Cancel = "cancel",
});

/// An enhanced refresh's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshType {
    /// Everything.
    Full,
    /// Drop the data.
    ClearValues,
    /// Recalculate only.
    Calculate,
    /// Data without recalculation.
    DataOnly,
    /// What needs it.
    Automatic,
    /// Compact dictionaries.
    Defragment,
}
words!(RefreshType {
    Full = "Full",
    ClearValues = "ClearValues",
    Calculate = "Calculate",
    DataOnly = "DataOnly",
    Automatic = "Automatic",
    Defragment = "Defragment",
});

/// An enhanced refresh's `commitMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// All or nothing.
    Transactional,
    /// Commit in batches.
    PartialBatch,
}
words!(CommitMode {
    Transactional = "Transactional",
    PartialBatch = "PartialBatch",
});

/// The e-mail a refresh sends (`MailOnCompletion` is for semantic models only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOption {
    /// No mail.
    NoNotification,
    /// Mail on failure.
    MailOnFailure,
    /// Mail at the end (semantic models only).
    MailOnCompletion,
}
words!(NotifyOption {
    NoNotification = "NoNotification",
    MailOnFailure = "MailOnFailure",
    MailOnCompletion = "MailOnCompletion",
});

/// A Gen1 dataflow's `processType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessType {
    /// The service's default.
    Default,
    /// Process everything.
    ProcessFull,
}
words!(ProcessType {
    Default = "default",
    ProcessFull = "processFull",
});

/// A Dataflow Gen2's `executeOption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecuteOption {
    /// Publish pending changes first.
    ApplyChangesIfNeeded,
    /// Run the published version.
    SkipApplyChanges,
}
words!(ExecuteOption {
    ApplyChangesIfNeeded = "ApplyChangesIfNeeded",
    SkipApplyChanges = "SkipApplyChanges",
});

/// What follows a dataflow refresh (`then`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Refresh what reads the dataflow, in lineage order.
    Downstream,
}
words!(Then {
    Downstream = "downstream",
});

/// A token's resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceName {
    /// Power BI REST.
    PowerBi,
    /// Fabric REST.
    Fabric,
    /// Power Automate / Logic Apps.
    Flow,
}
words!(ResourceName {
    PowerBi = "powerbi",
    Fabric = "fabric",
    Flow = "flow",
});

impl ResourceName {
    /// The auth module's resource.
    pub fn resource(self) -> crate::auth::Resource {
        match self {
            ResourceName::PowerBi => crate::auth::Resource::PowerBi,
            ResourceName::Fabric => crate::auth::Resource::Fabric,
            ResourceName::Flow => crate::auth::Resource::Flow,
        }
    }
}

/// A normalized status, as `history` filters on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusName {
    /// Still running.
    Running,
    /// Succeeded.
    Completed,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
    /// The service's timeout.
    TimedOut,
    /// Triggered without waiting.
    Triggered,
    /// Skipped.
    Skipped,
    /// Disabled.
    Disabled,
    /// pbiops's own error.
    Error,
}
words!(StatusName {
    Running = "Running",
    Completed = "Completed",
    Failed = "Failed",
    Cancelled = "Cancelled",
    TimedOut = "TimedOut",
    Triggered = "Triggered",
    Skipped = "Skipped",
    Disabled = "Disabled",
    Error = "Error",
});

/// The format of an alert payload file (`alertFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertFormat {
    /// A Teams message with one Adaptive Card, as a Teams workflow webhook accepts it.
    Teams,
    /// A Slack message with Block Kit blocks, as an incoming webhook accepts it.
    Slack,
}
words!(AlertFormat {
    Teams = "teams",
    Slack = "slack",
});
