//! The refresh API: standard and enhanced lifecycles, the one-refresh rule, shared capacity,
//! visibility lag, dropped requests, cancel, failures and body validation.

use crate::support::{Emu, entry};
use serde_json::json;

const BUSY: &str = "Invalid dataset refresh request. Another refresh request is already executing";

#[tokio::test]
async fn a_standard_refresh_runs_for_its_polls_then_completes() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.behave("Sales", "Sales Model", json!({"polls": 3}))
        .await;
    let model = emu.model("Sales", "Sales Model");

    let post = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await;

    assert_eq!(post.status, 202);
    assert_eq!(post.body, "");
    let id = post.header("requestid").unwrap().to_owned();
    assert!(post.header("location").is_none());
    assert!(post.header("x-ms-request-id").is_none());
    let mut statuses = vec![];
    for _ in 0..4 {
        let history = emu.history(&model, &token).await;
        assert_eq!(history[0]["requestId"], id.as_str(), "newest first");
        statuses.push(history[0]["status"].as_str().unwrap().to_owned());
        if history[0]["status"] == "Unknown" {
            assert!(history[0].get("endTime").is_none());
        }
    }
    assert_eq!(statuses, ["Unknown", "Unknown", "Unknown", "Completed"]);
    let history = emu.history(&model, &token).await;
    let done = &history[0];
    assert_eq!(done["refreshType"], "ViaApi");
    assert!(done["id"].is_u64());
    assert!(done.get("extendedStatus").is_none());
    assert!(done["startTime"].as_str().unwrap().ends_with('Z'));
    assert!(done["endTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(done["refreshAttempts"][0]["attemptId"], 1);
    assert_eq!(history.len(), 3, "two seeded entries plus the new one");
}

#[tokio::test]
async fn an_enhanced_refresh_goes_not_started_in_progress_completed() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");

    let post = emu
        .post(
            &format!("{model}/refreshes"),
            Some(&token),
            Some(json!({"type": "full", "objects": [{"table": "Orders"}]})),
        )
        .await;

    assert_eq!(post.status, 202, "{}", post.body);
    let id = post.header("x-ms-request-id").unwrap().to_owned();
    assert_eq!(post.header("requestid"), Some(id.as_str()));
    let location = post.header("location").unwrap();
    assert_eq!(
        location,
        format!("{}{model}/refreshes/{id}", emu.emulator.base_url())
    );
    let path = format!("{model}/refreshes/{id}");
    let mut seen = vec![];
    for _ in 0..3 {
        let reply = emu.get(&path, Some(&token)).await;
        let body = reply.json();
        seen.push((
            reply.status,
            body["extendedStatus"].as_str().unwrap().to_owned(),
        ));
        assert_eq!(body["type"], "Full");
        assert_eq!(body["commitMode"], "Transactional");
        assert!(
            !body["startTime"].as_str().unwrap().ends_with('Z'),
            "no Z in execution details"
        );
    }
    let expected = [(202, "NotStarted"), (202, "InProgress"), (200, "Completed")];
    assert_eq!(seen, expected.map(|(s, e)| (s, e.to_owned())));
    let done = emu.get(&path, Some(&token)).await.json();
    assert_eq!(done["status"], "Completed");
    assert_eq!(done["objects"][0]["table"], "Orders");
    assert!(done["endTime"].is_string());
    let history = emu.history(&model, &token).await;
    let item = entry(&history, &id).unwrap();
    assert_eq!(
        (
            item["refreshType"].as_str(),
            item["extendedStatus"].as_str()
        ),
        (Some("ViaEnhancedApi"), Some("Completed"))
    );
}

#[tokio::test]
async fn only_one_refresh_per_model_runs_at_a_time() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let orders = emu.model("Sales", "Orders");
    assert_eq!(
        emu.post(&format!("{orders}/refreshes"), Some(&token), None)
            .await
            .status,
        202
    );

    let second = emu
        .post(&format!("{orders}/refreshes"), Some(&token), None)
        .await;
    let seeded = emu
        .post(
            &format!("{}/refreshes", emu.model("Sales", "Inventory")),
            Some(&token),
            None,
        )
        .await;

    for reply in [second, seeded] {
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.json(),
            json!({"error": {"code": "InvalidRequest", "message": BUSY}})
        );
    }
}

#[tokio::test]
async fn shared_capacity_rejects_enhanced_bodies_and_caps_refreshes_per_day() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Marketing", "Campaign Performance");
    let refreshes = format!("{model}/refreshes");

    let enhanced = emu
        .post(&refreshes, Some(&token), Some(json!({"type": "Full"})))
        .await;
    assert_eq!(enhanced.status, 400);
    assert!(
        enhanced.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shared capacity")
    );

    // Six scheduled refreshes today in the scenario: two more are allowed.
    for _ in 0..2 {
        let post = emu
            .post(
                &refreshes,
                Some(&token),
                Some(json!({"notifyOption": "NoNotification"})),
            )
            .await;
        assert_eq!(post.status, 202, "{}", post.body);
        emu.history(&model, &token).await; // observed once: polls 1 ends it
    }
    let over = emu.post(&refreshes, Some(&token), None).await;
    assert_eq!(over.status, 400);
    assert_eq!(
        over.json()["error"]["message"],
        "Invalid dataset refresh request. Number of refresh requests in last 24 hours exceeded limit"
    );
}

#[tokio::test]
async fn a_new_refresh_can_be_missing_from_the_first_history_reads() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.behave(
        "Sales",
        "Orders",
        json!({"polls": 1, "historyDelayPolls": 2}),
    )
    .await;
    let model = emu.model("Sales", "Orders");
    let id = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await
        .header("requestid")
        .unwrap()
        .to_owned();

    let visible: Vec<bool> = {
        let mut v = vec![];
        for _ in 0..3 {
            v.push(entry(&emu.history(&model, &token).await, &id).is_some());
        }
        v
    };
    assert_eq!(visible, [false, false, true]);
}

#[tokio::test]
async fn a_dropped_request_is_accepted_but_never_appears() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.behave("Sales", "Orders", json!({"drop": true})).await;
    let model = emu.model("Sales", "Orders");

    let post = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await;
    assert_eq!(post.status, 202);
    let id = post.header("requestid").unwrap().to_owned();

    for _ in 0..3 {
        assert!(entry(&emu.history(&model, &token).await, &id).is_none());
    }
    assert!(
        !emu.get("/_emulator/refreshes", None)
            .await
            .body
            .contains(&id)
    );
    assert_eq!(
        emu.post(&format!("{model}/refreshes"), Some(&token), None)
            .await
            .status,
        202,
        "nothing is running"
    );
}

#[tokio::test]
async fn an_enhanced_refresh_can_be_cancelled_once() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.behave("Sales", "Orders", json!({})).await; // runs until cancelled
    let model = emu.model("Sales", "Orders");
    let post = emu
        .post(
            &format!("{model}/refreshes"),
            Some(&token),
            Some(json!({"type": "DataOnly"})),
        )
        .await;
    let path = format!(
        "{model}/refreshes/{}",
        post.header("x-ms-request-id").unwrap()
    );

    let cancel = emu.delete(&path, Some(&token)).await;
    assert_eq!((cancel.status, cancel.body.as_str()), (200, ""));

    let details = emu.get(&path, Some(&token)).await;
    assert_eq!(details.status, 200);
    assert_eq!(
        (
            details.json()["status"].as_str(),
            details.json()["extendedStatus"].as_str()
        ),
        (Some("Cancelled"), Some("Cancelled"))
    );
    let again = emu.delete(&path, Some(&token)).await;
    assert_eq!(
        (again.status, again.code()),
        (400, "InvalidRequest".to_owned())
    );
}

#[tokio::test]
async fn a_standard_refresh_has_no_details_and_cannot_be_cancelled() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Orders");
    let post = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await;
    let path = format!("{model}/refreshes/{}", post.header("requestid").unwrap());
    assert_eq!(emu.get(&path, Some(&token)).await.code(), "ItemNotFound");
    assert_eq!(emu.delete(&path, Some(&token)).await.code(), "ItemNotFound");
}

#[tokio::test]
async fn a_failing_model_reports_service_exception_json_as_a_string() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Customer Churn");
    let id = emu
        .post(&format!("{model}/refreshes"), Some(&token), None)
        .await
        .header("requestid")
        .unwrap()
        .to_owned();
    emu.history(&model, &token).await;

    let history = emu.history(&model, &token).await;
    let failed = entry(&history, &id).unwrap();
    assert_eq!(failed["status"], "Failed");
    let inner: serde_json::Value =
        serde_json::from_str(failed["serviceExceptionJson"].as_str().unwrap()).unwrap();
    assert_eq!(
        inner["errorCode"],
        "ModelRefreshFailed_CredentialsNotSpecified"
    );
}

#[tokio::test]
async fn partial_batch_with_a_refresh_policy_is_accepted_then_fails_with_the_engine_message() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    emu.behave("Sales", "Orders", json!({"polls": 0})).await;
    let model = emu.model("Sales", "Orders");
    let post = emu
        .post(
            &format!("{model}/refreshes"),
            Some(&token),
            Some(json!({"commitMode": "partialBatch"})),
        )
        .await;
    assert_eq!(post.status, 202);

    let details = emu
        .get(
            &format!(
                "{model}/refreshes/{}",
                post.header("x-ms-request-id").unwrap()
            ),
            Some(&token),
        )
        .await;
    let body = details.json();
    assert_eq!(
        (details.status, body["extendedStatus"].as_str()),
        (200, Some("Failed"))
    );
    assert_eq!(body["commitMode"], "PartialBatch");
    assert!(
        body["messages"][0]["message"]
            .as_str()
            .unwrap()
            .contains("'CommitMode' = 'Transactional'")
    );
    assert_eq!(body["messages"][0]["type"], "Error");
}

#[tokio::test]
async fn invalid_bodies_and_models_are_400s_naming_the_problem() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let orders = format!("{}/refreshes", emu.model("Sales", "Orders"));
    let cases = [
        (
            json!({"type": "Full", "notifyOption": "MailOnFailure"}),
            "notifyOption",
        ),
        (json!({"timeout": "25:00:00"}), "timeout"),
        (json!({"objects": [{"partition": "2026"}]}), "table"),
        (json!({"type": "Add"}), "type"),
    ];
    for (body, field) in cases {
        let reply = emu.post(&orders, Some(&token), Some(body)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "InvalidRequest".to_owned())
        );
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{}",
            reply.body
        );
    }
    let direct_query = format!(
        "{}/refreshes",
        emu.model("Sales", "Live Sales (DirectQuery)")
    );
    let reply = emu.post(&direct_query, Some(&token), None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "InvalidRequest".to_owned())
    );
}

#[tokio::test]
async fn history_honours_top_and_seeded_entries_look_real() {
    let emu = Emu::demo().await;
    let token = emu.token().await;
    let model = emu.model("Sales", "Inventory");
    let top = emu
        .get(&format!("{model}/refreshes?$top=1"), Some(&token))
        .await
        .json();
    let value = top["value"].as_array().unwrap();
    assert_eq!(value.len(), 1);
    assert_eq!(
        value[0]["status"], "Unknown",
        "the seeded running refresh is the newest"
    );
    assert!(
        top["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#refreshes")
    );
    let all = emu.history(&model, &token).await;
    assert_eq!(all[1]["status"], "Completed");
    assert!(all[0]["id"].as_u64().unwrap() > all[1]["id"].as_u64().unwrap());
    let bad = emu
        .get(&format!("{model}/refreshes?$top=0"), Some(&token))
        .await;
    assert_eq!(bad.status, 400);
}
