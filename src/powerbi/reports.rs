//! Reports (`powerbi-api.md` §2.6): a report names its semantic model, possibly in another
//! workspace (`datasetWorkspaceId`); a paginated report has none.

use serde::Deserialize;

use super::PowerBi;
use super::wire::List;
use crate::error::Error;

/// A report.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Report id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `PowerBIReport` or `PaginatedReport`.
    #[serde(default)]
    pub report_type: Option<String>,
    /// Its model; absent for paginated reports.
    #[serde(default)]
    pub dataset_id: Option<String>,
    /// The model's workspace, when not the report's own.
    #[serde(default)]
    pub dataset_workspace_id: Option<String>,
}

impl PowerBi<'_> {
    /// The reports of a workspace.
    pub async fn reports(&self, group_id: &str) -> Result<Vec<Report>, Error> {
        let action = format!("list the reports of workspace {group_id}");
        let list: List<Report> = self
            .get(
                "reports",
                &action,
                &format!("/groups/{group_id}/reports"),
                &[],
            )
            .await?;
        Ok(list.value)
    }
}
