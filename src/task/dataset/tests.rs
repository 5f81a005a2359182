//! Unit tests of `dataset`: defaults, and every refused task naming its field.
use super::super::wait::DEFAULT_TIMEOUT;
use super::super::{assert_refused, parse_task};
use super::*;

#[test]
fn a_minimal_refresh_gets_every_default() {
    let t = parse_task(
        r#"{"operation":"dataset.refresh","workspace":"Sales","dataset":"Sales Model"}"#,
    )
    .expect("valid");
    let Task::DatasetRefresh(r) = t else {
        panic!("refresh")
    };
    assert_eq!(r.target.profile, "default");
    assert_eq!(
        r.body,
        RefreshBody::Standard {
            notify_option: None
        }
    );
    assert_eq!(r.if_running, IfRunning::Attach);
    assert_eq!(r.wait.timeout, DEFAULT_TIMEOUT);
    assert!(r.wait.wait);
}

#[test]
fn enhanced_bodies_are_canonicalised() {
    let t = parse_task(
        r#"{"operation":"dataset.refresh","workspace":"w","dataset":"d","profile":"Finance","ifRunning":"SKIP",
            "refresh":{"type":"full","commitMode":"partialbatch","objects":[{"table":"Sales","partition":"2026"}],"timeout":"PT2H"}}"#,
    )
    .expect("valid");
    let Task::DatasetRefresh(r) = t else {
        panic!("refresh")
    };
    assert_eq!(r.target.profile, "finance");
    assert_eq!(r.if_running, IfRunning::Skip);
    let RefreshBody::Enhanced(e) = r.body else {
        panic!("enhanced")
    };
    assert_eq!(e.apply_refresh_policy, Some(false));
    let wire = serde_json::to_value(&e).expect("json");
    assert_eq!(
        wire,
        serde_json::json!({"type":"Full","commitMode":"PartialBatch","applyRefreshPolicy":false,
                           "objects":[{"table":"Sales","partition":"2026"}],"timeout":"02:00:00"})
    );
}

#[test]
fn rule_violations_name_their_field() {
    let r = |rest: &str| {
        format!(r#"{{"operation":"dataset.refresh","workspace":"w","dataset":"d",{rest}}}"#)
    };
    let cases = [
        (r#"{"workspace":"w","dataset":"d"}"#.to_string(), "operation"),
        (r#"{"operation":"dataset.refreshh"}"#.to_string(), "operation"),
        (r#"{"operation":7}"#.to_string(), "operation"),
        (r#"{"operation":"dataset.refresh","dataset":"d"}"#.to_string(), "workspace"),
        (r#"{"operation":"dataset.refresh","workspace":" ","dataset":"d"}"#.to_string(), "workspace"),
        (r(r#""ifRunning":"wait""#), "ifRunning"),
        (r(r#""onTimeout":"cancel""#), "onTimeout"),
        (r(r#""refresh":{}"#), "refresh"),
        (r(r#""refresh":{"type":"Add"}"#), "refresh.type"),
        (r(r#""refresh":{"tpye":"Full"}"#), "refresh.tpye"),
        (r(r#""refresh":{"maxParallelism":"four"}"#), "refresh.maxParallelism"),
        (r(r#""refresh":{"maxParallelism":0}"#), "refresh.maxParallelism"),
        (r(r#""refresh":{"objects":[{"partition":"p"}]}"#), "refresh.objects[0].table"),
        (r(r#""refresh":{"objects":[{"table":""}]}"#), "refresh.objects[0].table"),
        (r(r#""refresh":{"commitMode":"PartialBatch","applyRefreshPolicy":true}"#), "refresh.applyRefreshPolicy"),
        (r(r#""refresh":{"timeout":"25:00:00"}"#), "refresh.timeout"),
        (r(r#""refresh":{"timeout":1e30}"#), "refresh.timeout"),
        (r(r#""refresh":{"effectiveDate":"yesterday"}"#), "refresh.effectiveDate"),
        (r(r#""poll":{"min":"PT10S","max":"PT5S"}"#), "poll.max"),
        (r(r#""poll":{"min":0}"#), "poll.min"),
        (r(r#""poll":{"every":"PT1S"}"#), "poll.every"),
        (r(r#""notifyOption":"Always""#), "notifyOption"),
        (r(r#""notifyOption":"MailOnFailure","refresh":{"type":"Full"}"#), "notifyOption"),
        (r(r#""profile":"my-profile""#), "profile"),
        (r(r#""wiat":true"#), "wiat"),
        (r(r#""maxParallel":2"#), "maxParallel"),
        (r(r#""outputFile":"t.json""#), "outputFile"),
        (r(r#""timeout":0"#), "timeout"),
        (r(r#""timeout":-5"#), "timeout"),
        (r(r#""timeout":1e30"#), "timeout"),
        (r(r#""timeout":"1e30""#), "timeout"),
        (r(r#""timeout":"NaN""#), "timeout"),
        (r(r#""timeout":"2 hours""#), "timeout"),
        (r(r#""grace":18446744073709551615"#), "grace"),
        (r(r#""poll":{"max":"P9999D"}"#), "poll.max"),
        (r#"{"operation":"dataset.status","workspace":"w","dataset":"d","refresh":{"type":"Full"}}"#.to_string(), "refresh"),
        (r#"{"operation":"dataset.status","workspace":"w","dataset":"d","maxAge":"old"}"#.to_string(), "maxAge"),
        (r#"{"operation":"dataset.status","workspace":"w","dataset":"d","maxAge":-1}"#.to_string(), "maxAge"),
        (r#"{"operation":"dataset.cancel","workspace":"w"}"#.to_string(), "dataset"),
        (r#"{"operation":"dataset.cancel","workspace":"w","dataset":"d","requestId":""}"#.to_string(), "requestId"),
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|(j, f)| (j.as_str(), *f)).collect();
    assert_refused(&cases);
}

#[test]
fn names_are_trimmed_and_bounded() {
    let Task::DatasetCancel(c) = parse_task(
        r#"{"operation":"dataset.cancel","workspace":" Sales ","dataset":"d","requestId":"r1"}"#,
    )
    .expect("valid") else {
        panic!("cancel")
    };
    assert_eq!(c.target.workspace, "Sales");
    let long = format!(
        r#"{{"operation":"dataset.cancel","workspace":"{}","dataset":"d"}}"#,
        "x".repeat(super::super::fields::MAX_NAME_CHARS + 1)
    );
    assert_refused(&[(&long, "workspace")]);
}
