//! Unit tests of `fleet`: defaults, and every refused task naming its field.
use super::super::{assert_refused, parse_task};
use super::*;
use crate::wait::Ceiling;

fn fleet(operation: &str, targets: &str, rest: &str) -> String {
    format!(r#"{{"operation":"{operation}","targets":{targets}{rest}}}"#)
}

#[test]
fn a_fleet_mixes_models_and_dataflows_with_per_target_options() {
    let targets = r#"[
        {"workspace":"Sales","dataflow":"Staging","generation":1,"processType":"processFull"},
        {"workspace":"Sales","dataflow":"Gen2 Flow","id":"g2","executeOption":"SkipApplyChanges","timeout":"PT10M"},
        {"workspace":"Sales","dataset":"Model","refresh":{"type":"Full"},"onTimeout":"cancel",
         "dependsOn":["Sales/Staging","g2"],"ifRunning":"fail"}]"#;
    for op in ["dataset.refresh", "dataflow.refresh"] {
        let Task::Fleet(f) =
            parse_task(&fleet(op, targets, r#","timeout":"PT1H","maxParallel":3"#)).expect("valid")
        else {
            panic!("fleet")
        };
        assert_eq!((f.operation, f.max_parallel), (op, 3));
        assert_eq!(f.output_file, PathBuf::from("targets.json"));
        let keys: Vec<&str> = f.targets.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["Sales/Staging", "g2", "Sales/Model"]);
        assert_eq!(f.targets[2].depends_on, ["Sales/Staging", "g2"]);
        let ItemRefresh::Dataflow(g1) = &f.targets[0].refresh else {
            panic!("dataflow")
        };
        assert_eq!(g1.options.process_type.as_deref(), Some("processFull"));
        assert_eq!(g1.wait.timeout, std::time::Duration::from_secs(3600));
        let ItemRefresh::Dataflow(g2) = &f.targets[1].refresh else {
            panic!("dataflow")
        };
        assert_eq!(g2.wait.timeout, std::time::Duration::from_secs(600));
        let ItemRefresh::Model(m) = &f.targets[2].refresh else {
            panic!("model")
        };
        assert_eq!(
            (m.if_running, m.on_timeout),
            (IfRunning::Fail, OnTimeout::Cancel)
        );
        assert_eq!(m.wait.poll_ceiling, Ceiling::Default, "poll.max left out");
    }
    let Task::Fleet(given) = parse_task(&fleet(
        "dataset.refresh",
        r#"[{"workspace":"w","dataset":"m","timeout":"PT1M"}]"#,
        r#","poll":{"max":"PT2M"}"#,
    ))
    .expect("valid") else {
        panic!("fleet")
    };
    let ItemRefresh::Model(m) = &given.targets[0].refresh else {
        panic!("model")
    };
    assert_eq!(
        m.wait.poll_ceiling,
        Ceiling::Given,
        "a target inherits the task's poll.max as given"
    );
}

#[test]
fn fleet_mistakes_name_their_field() {
    let m = |extra: &str| format!(r#"{{"workspace":"w","dataset":"m"{extra}}}"#);
    let f = |extra: &str| format!(r#"{{"workspace":"w","dataflow":"f"{extra}}}"#);
    let cases = [
        (fleet("dataset.refresh", "[]", ""), "targets"),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m("")),
                r#","dataset":"x""#,
            ),
            "dataset",
        ),
        (
            fleet(
                "dataflow.refresh",
                &format!("[{}]", f("")),
                r#","then":"downstream""#,
            ),
            "then",
        ),
        (
            fleet(
                "dataflow.refresh",
                &format!("[{}]", f("")),
                r#","generation":1"#,
            ),
            "generation",
        ),
        (
            fleet("dataset.refresh", r#"[{"workspace":"w"}]"#, ""),
            "targets[0]",
        ),
        (
            fleet("dataset.refresh", r#"[{"dataset":"d"}]"#, ""),
            "targets[0].workspace",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m(r#","dataflow":"f""#)),
                "",
            ),
            "targets[0].dataflow",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m(r#","generation":2"#)),
                "",
            ),
            "targets[0].generation",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", f(r#","refresh":{"type":"Full"}"#)),
                "",
            ),
            "targets[0].refresh",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", f(r#","generation":2,"processType":"default""#)),
                "",
            ),
            "targets[0].processType",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m(r#","refresh":{"commitMode":"x"}"#)),
                "",
            ),
            "targets[0].refresh.commitMode",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m(r#","onTimeout":"cancel""#)),
                "",
            ),
            "targets[0].onTimeout",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m("")),
                r#","onTimeout":"cancel""#,
            ),
            "targets[0].onTimeout",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m(r#","timeout":1e30"#)),
                "",
            ),
            "targets[0].timeout",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m(r#","timeout":0"#)),
                "",
            ),
            "targets[0].timeout",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m(r#","grace":"PT1M""#)),
                "",
            ),
            "targets[0].grace",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m("")),
                r#","maxParallel":0"#,
            ),
            "maxParallel",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m("")),
                r#","maxParallelPerCapacity":100000"#,
            ),
            "maxParallelPerCapacity",
        ),
        (
            fleet("dataset.refresh", &format!("[{},{}]", m(""), m("")), ""),
            "targets[1]",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{},{}]", m(r#","id":"a""#), f(r#","id":"a""#)),
                "",
            ),
            "targets[1]",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m(r#","dependsOn":["nope"]"#)),
                "",
            ),
            "targets[0].dependsOn[0]",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{}]", m(r#","dependsOn":["w/m"]"#)),
                "",
            ),
            "targets[0].dependsOn[0]",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{},{}]", m(r#","dependsOn":["w/f","w/f"]"#), f("")),
                "",
            ),
            "targets[0].dependsOn[1]",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!("[{},{}]", m(r#","dependsOn":["w/f"]"#), f("")),
                r#","wait":false"#,
            ),
            "wait",
        ),
        (
            fleet(
                "dataset.refresh",
                &format!(
                    "[{},{}]",
                    m(r#","dependsOn":["w/f"]"#),
                    f(r#","dependsOn":["w/m"]"#)
                ),
                "",
            ),
            "targets[1].dependsOn",
        ),
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|(j, f)| (j.as_str(), *f)).collect();
    assert_refused(&cases);
}

#[test]
fn a_cycle_is_named_in_full() {
    let targets = r#"[{"workspace":"w","dataset":"a","id":"a","dependsOn":["b"]},
        {"workspace":"w","dataflow":"b","id":"b","dependsOn":["c"]},
        {"workspace":"w","dataset":"c","id":"c","dependsOn":["a"]}]"#;
    let err = parse_task(&fleet("dataflow.refresh", targets, "")).expect_err("cycle");
    assert_eq!(
        err.to_string(),
        "invalid task: `targets[2].dependsOn`: forms a cycle: a → b → c → a"
    );
}

#[test]
fn cycles_are_found_as_closed_walks() {
    assert_eq!(find_cycle(&[vec![1], vec![2], vec![]]), None);
    assert_eq!(
        find_cycle(&[vec![1], vec![2], vec![0]]),
        Some(vec![0, 1, 2, 0])
    );
    assert_eq!(find_cycle(&[vec![], vec![2], vec![1]]), Some(vec![1, 2, 1]));
    // A diamond is not a cycle.
    assert_eq!(find_cycle(&[vec![1, 2], vec![3], vec![3], vec![]]), None);
    // A long chain does not exhaust the stack.
    let chain: Vec<Vec<usize>> = (0..200_000)
        .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
        .collect();
    assert_eq!(find_cycle(&chain), None);
}
