//! Gen1 (Power BI) dataflows: list, refresh, transactions, cancel, lineage
//! (`powerbi-api.md` §2.5).
//!
//! A dataflow refresh answers 2xx with no id at all, so the refresh is found afterwards in the
//! transactions, as the newest one that started at or after the trigger (allowing for clock
//! skew). Transaction ids hold `:`, `@` and `$`, so they are percent-encoded in the cancel path.

use reqwest::Method;
use serde::Deserialize;

use super::wire::List;
use super::{Call, PowerBi, Trigger, failure};
use crate::error::Error;
use crate::http::Retry;

/// A Gen1 dataflow (`objectId`, not `id`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Dataflow {
    /// Dataflow id.
    pub object_id: String,
    /// Name.
    pub name: String,
}

/// One refresh of a dataflow. Every field but `id` is optional on the wire.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// `<ISO timestamp>@<guid>$<n>`.
    pub id: String,
    /// e.g. `OnDemand`.
    #[serde(default)]
    pub refresh_type: Option<String>,
    /// Start time.
    #[serde(default)]
    pub start_time: Option<String>,
    /// End time; absent while running.
    #[serde(default)]
    pub end_time: Option<String>,
    /// No documented enumeration: `InProgress`, `Success`, `Failed`, `Cancelled` are observed.
    #[serde(default)]
    pub status: Option<String>,
}

/// `GET …/datasets/upstreamDataflows`: which model reads which dataflow.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetToDataflow {
    /// The model.
    pub dataset_object_id: String,
    /// The dataflow it reads.
    pub dataflow_object_id: String,
    /// The dataflow's workspace.
    #[serde(default)]
    pub workspace_object_id: Option<String>,
}

/// `GET …/dataflows/{id}/upstreamDataflows`: which dataflows a dataflow reads.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamDataflow {
    /// The upstream dataflow.
    pub target_dataflow_id: String,
    /// Its workspace.
    #[serde(default)]
    pub group_id: Option<String>,
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl PowerBi<'_> {
    /// The Gen1 dataflows of a workspace.
    pub async fn dataflows(&self, group_id: &str) -> Result<Vec<Dataflow>, Error> {
        let action = format!("list the dataflows of workspace {group_id}");
        let list: List<Dataflow> = self
            .get(
                "dataflows",
                &action,
                &format!("/groups/{group_id}/dataflows"),
                &[],
            )
            .await?;
        Ok(list.value)
    }

    /// Triggers a dataflow refresh. The service returns no id: [`Trigger::Accepted`] carries "".
    pub async fn trigger_dataflow(
        &self,
        group_id: &str,
        dataflow_id: &str,
        notify: &str,
        process_type: Option<&str>,
    ) -> Result<Trigger, Error> {
        let action = format!("trigger a refresh of dataflow {dataflow_id} in workspace {group_id}");
        let path = format!("/groups/{group_id}/dataflows/{dataflow_id}/refreshes");
        let body = serde_json::json!({ "notifyOption": notify });
        let query: Vec<(&str, String)> = process_type
            .map(|p| vec![("processType", p.to_string())])
            .unwrap_or_default();
        let call = Call {
            endpoint: "dataflow.refresh",
            action: &action,
            retry: Retry::ThrottleOnly,
            method: Method::POST,
            path: &path,
            query: &query,
            body: Some(&body),
        };
        let response = match self.call(call).await {
            Err(Error::Unavailable { last, .. }) => return Ok(Trigger::Ambiguous(last)),
            other => other?,
        };
        if response.is_success() {
            return Ok(Trigger::Accepted(String::new()));
        }
        if response.capacity_rejected() {
            return Ok(Trigger::CapacityRejected(response.service_error()));
        }
        if response.status >= 500 {
            return Ok(Trigger::Ambiguous(response.service_error().to_string()));
        }
        let service = response.service_error();
        let text = format!(
            "{} {}",
            service.code.clone().unwrap_or_default(),
            service.message.clone().unwrap_or_default()
        )
        .to_ascii_lowercase();
        if response.status == 409
            || text.contains("already")
                && (text.contains("progress")
                    || text.contains("running")
                    || text.contains("executing"))
        {
            return Ok(Trigger::AlreadyRunning(service));
        }
        Err(failure(&action, &response))
    }

    /// The dataflow's transactions, newest first (sorted here: the order is not documented).
    pub async fn transactions(
        &self,
        group_id: &str,
        dataflow_id: &str,
    ) -> Result<Vec<Transaction>, Error> {
        let action =
            format!("read the transactions of dataflow {dataflow_id} in workspace {group_id}");
        let path = format!("/groups/{group_id}/dataflows/{dataflow_id}/transactions");
        let list: List<Transaction> = self
            .get("dataflow.transactions", &action, &path, &[])
            .await?;
        let mut transactions = list.value;
        transactions.sort_by(|a, b| b.start_time.cmp(&a.start_time));
        Ok(transactions)
    }

    /// Cancels a transaction; returns the service's status word (`SuccessfullyMarked`, …).
    pub async fn cancel_transaction(
        &self,
        group_id: &str,
        transaction_id: &str,
    ) -> Result<String, Error> {
        let action =
            format!("cancel dataflow transaction {transaction_id} in workspace {group_id}");
        let path = format!(
            "/groups/{group_id}/dataflows/transactions/{}/cancel",
            encode_segment(transaction_id)
        );
        // Marking a transaction cancelled twice is harmless: retried like a read.
        let call = Call {
            endpoint: "dataflow.cancel",
            action: &action,
            retry: Retry::Idempotent,
            method: Method::POST,
            path: &path,
            query: &[],
            body: None,
        };
        let response = self.call(call).await?;
        if !response.is_success() {
            return Err(failure(&action, &response));
        }
        let value: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
        Ok(value["status"]
            .as_str()
            .unwrap_or("SuccessfullyMarked")
            .to_string())
    }

    /// Which models of `group_id` read which dataflows.
    pub async fn datasets_upstream_dataflows(
        &self,
        group_id: &str,
    ) -> Result<Vec<DatasetToDataflow>, Error> {
        let action = format!("read the dataflow lineage of the models in workspace {group_id}");
        let list: List<DatasetToDataflow> = self
            .get(
                "lineage.datasets",
                &action,
                &format!("/groups/{group_id}/datasets/upstreamDataflows"),
                &[],
            )
            .await?;
        Ok(list.value)
    }

    /// Which dataflows a dataflow reads.
    pub async fn upstream_dataflows(
        &self,
        group_id: &str,
        dataflow_id: &str,
    ) -> Result<Vec<UpstreamDataflow>, Error> {
        let action = format!("read the upstream dataflows of dataflow {dataflow_id}");
        let path = format!("/groups/{group_id}/dataflows/{dataflow_id}/upstreamDataflows");
        let list: List<UpstreamDataflow> =
            self.get("lineage.dataflows", &action, &path, &[]).await?;
        Ok(list.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_are_percent_encoded() {
        assert_eq!(
            encode_segment("2020-09-11T19:21:52.8778432Z@9cc7a369-0000$1374282"),
            "2020-09-11T19%3A21%3A52.8778432Z%409cc7a369-0000%241374282"
        );
    }

    #[test]
    fn transactions_parse_with_optional_fields() {
        let body = r#"{"value":[{"id":"2020-08-27T16:07:47.2487692Z@8dbd8c92$2"},{"id":"x","refreshType":"OnDemand","status":"Success"}]}"#;
        let list: List<Transaction> = serde_json::from_str(body).expect("parses");
        assert_eq!(list.value[0].status, None);
        assert_eq!(list.value[1].status.as_deref(), Some("Success"));
    }
}
