//! The APIs a token can be for, and their audience and scope in each cloud.

use crate::error::Error;
use crate::settings::Profile;

/// The APIs a token can be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// The Power BI REST API.
    PowerBi,
    /// The Fabric REST API.
    Fabric,
    /// Power Automate (`service.flow`).
    Flow,
}

impl Resource {
    /// The resource URI (the token's audience) in `profile`'s cloud, as managed identity
    /// endpoints want it; a resource the cloud does not have is a setting error naming the
    /// cloud's variable, before anything is sent.
    pub fn uri(self, profile: &Profile) -> Result<&'static str, Error> {
        let cloud = profile.cloud;
        let found = match self {
            Resource::PowerBi => Some(cloud.powerbi_resource()),
            Resource::Fabric => cloud.fabric().map(|(_, resource)| resource),
            Resource::Flow => cloud.flow_resource(),
        };
        found.ok_or_else(|| {
            let (what, help) = match self {
                Resource::Fabric => (
                    "Microsoft Fabric is not available",
                    "Fabric (Dataflow Gen2 and other Fabric items) exists only in the public cloud: in this cloud refresh semantic models and Gen1 dataflows, or run the task with a public-cloud profile",
                ),
                _ => (
                    "pbiops does not know the Power Automate token scope",
                    "Power Automate tokens are supported in the public cloud only; flow.trigger needs no token (its URL is signed)",
                ),
            };
            Error::setting(
                &profile.cloud_variable,
                format!(
                    "{what} in cloud `{}` (profile `{}`); nothing was sent",
                    cloud.name(),
                    profile.name
                ),
                help,
            )
        })
    }

    /// The client-credentials `.default` scope of the resource in `profile`'s cloud.
    pub fn scope(self, profile: &Profile) -> Result<String, Error> {
        // For Power Automate the double slash is deliberate: it keeps the audience's trailing slash.
        Ok(format!("{}/.default", self.uri(profile)?))
    }

    /// The name used in tasks, outputs and the token store.
    pub fn name(self) -> &'static str {
        match self {
            Resource::PowerBi => "powerbi",
            Resource::Fabric => "fabric",
            Resource::Flow => "flow",
        }
    }
}
