//! Microsoft clouds: the Entra ID authority, the Power BI and Fabric hosts, and the token scopes
//! of each, chosen by `PBIOPS_CLOUD` (or `PBIOPS_PROFILE_<NAME>_CLOUD`).
//!
//! Every value below was checked against Microsoft's documentation; the sources are listed in
//! `docs/configuration.md` ("Clouds"). Where a cloud has no Fabric, Fabric operations are
//! refused before anything is sent. Power Automate's token scope in the sovereign clouds is not
//! documented where we could verify it, so a `flow` token is refused there too, rather than
//! guessed.

use crate::error::Error;

/// A Microsoft cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cloud {
    /// The public (commercial) cloud.
    #[default]
    Public,
    /// US Government Community Cloud (GCC): public Entra ID, government Power BI.
    UsGov,
    /// US Government Community Cloud High (GCC High).
    UsGovHigh,
    /// US Department of Defense.
    Dod,
    /// Power BI operated by 21Vianet in China.
    China,
}

/// The names `PBIOPS_CLOUD` accepts.
pub const NAMES: &[&str] = &["public", "usgov", "usgovhigh", "dod", "china"];

impl Cloud {
    /// Reads a cloud name; an unknown one is a setting error naming `variable`.
    pub fn parse(variable: &str, value: &str) -> Result<Cloud, Error> {
        Ok(match value.trim().to_ascii_lowercase().as_str() {
            "public" | "commercial" => Cloud::Public,
            "usgov" | "gcc" => Cloud::UsGov,
            "usgovhigh" | "gcchigh" | "gcc-high" => Cloud::UsGovHigh,
            "dod" => Cloud::Dod,
            "china" => Cloud::China,
            other => {
                return Err(Error::setting(
                    variable,
                    format!("`{other}` is not a cloud"),
                    format!(
                        "one of: {} (public is the default; usgov is GCC, usgovhigh is GCC High)",
                        NAMES.join(", ")
                    ),
                ));
            }
        })
    }

    /// The name `PBIOPS_CLOUD` uses.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Public => "public",
            Cloud::UsGov => "usgov",
            Cloud::UsGovHigh => "usgovhigh",
            Cloud::Dod => "dod",
            Cloud::China => "china",
        }
    }

    /// The Entra ID authority host.
    pub fn authority(self) -> &'static str {
        match self {
            // GCC tenants live in the public Entra ID.
            Cloud::Public | Cloud::UsGov => "https://login.microsoftonline.com",
            Cloud::UsGovHigh | Cloud::Dod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The Power BI REST base.
    pub fn powerbi_api(self) -> &'static str {
        match self {
            Cloud::Public => "https://api.powerbi.com/v1.0/myorg",
            Cloud::UsGov => "https://api.powerbigov.us/v1.0/myorg",
            Cloud::UsGovHigh => "https://api.high.powerbigov.us/v1.0/myorg",
            Cloud::Dod => "https://api.mil.powerbigov.us/v1.0/myorg",
            Cloud::China => "https://api.powerbi.cn/v1.0/myorg",
        }
    }

    /// The Power BI resource (token audience); the client-credentials scope adds `/.default`.
    pub fn powerbi_resource(self) -> &'static str {
        match self {
            Cloud::Public => "https://analysis.windows.net/powerbi/api",
            Cloud::UsGov => "https://analysis.usgovcloudapi.net/powerbi/api",
            Cloud::UsGovHigh => "https://high.analysis.usgovcloudapi.net/powerbi/api",
            Cloud::Dod => "https://mil.analysis.usgovcloudapi.net/powerbi/api",
            Cloud::China => "https://analysis.chinacloudapi.cn/powerbi/api",
        }
    }

    /// The Fabric REST base and resource, where Fabric exists (only the public cloud: Microsoft
    /// documents that Fabric is not available in the sovereign clouds yet).
    pub fn fabric(self) -> Option<(&'static str, &'static str)> {
        match self {
            Cloud::Public => Some((
                "https://api.fabric.microsoft.com/v1",
                "https://api.fabric.microsoft.com",
            )),
            _ => None,
        }
    }

    /// The Power Automate resource, where pbiops knows it (only the public cloud).
    pub fn flow_resource(self) -> Option<&'static str> {
        // The double slash of the scope built from it is deliberate: it keeps the trailing slash.
        (self == Cloud::Public).then_some("https://service.flow.microsoft.com/")
    }

    /// The audience a federated token (workload identity, a managed identity used as a
    /// federated credential) carries by default in this cloud's Entra ID.
    pub fn federated_audience(self) -> &'static str {
        match self {
            Cloud::Public | Cloud::UsGov => "api://AzureADTokenExchange",
            Cloud::UsGovHigh | Cloud::Dod => "api://AzureADTokenExchangeUSGov",
            Cloud::China => "api://AzureADTokenExchangeChina",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_and_unknown_names_are_refused() {
        for name in NAMES {
            let cloud = Cloud::parse("PBIOPS_CLOUD", name).expect("known");
            assert_eq!(cloud.name(), *name);
        }
        assert_eq!(
            Cloud::parse("PBIOPS_CLOUD", " GCC-High ").expect("alias"),
            Cloud::UsGovHigh
        );
        let err = Cloud::parse("PBIOPS_PROFILE_GOV_CLOUD", "azure-germany").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "invalid setting: `PBIOPS_PROFILE_GOV_CLOUD`: `azure-germany` is not a cloud"
        );
        assert!(err.hint().expect("hint").contains("usgovhigh"));
    }

    #[test]
    fn each_cloud_has_its_own_hosts_and_scopes() {
        let all = [
            Cloud::Public,
            Cloud::UsGov,
            Cloud::UsGovHigh,
            Cloud::Dod,
            Cloud::China,
        ];
        let resources: std::collections::BTreeSet<_> =
            all.iter().map(|c| c.powerbi_resource()).collect();
        let apis: std::collections::BTreeSet<_> = all.iter().map(|c| c.powerbi_api()).collect();
        assert_eq!((resources.len(), apis.len()), (5, 5));
        assert!(all.iter().all(|c| c.powerbi_api().starts_with("https://")));
        assert_eq!(Cloud::UsGov.authority(), Cloud::Public.authority());
        assert_eq!(Cloud::Dod.authority(), "https://login.microsoftonline.us");
        assert!(Cloud::Public.fabric().is_some());
        assert!(all[1..].iter().all(|c| c.fabric().is_none()));
    }
}
