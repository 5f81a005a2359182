use super::*;

fn bar(id: i64, lane: &str, status: &str, start: i64, end: Option<i64>) -> Bar {
    Bar {
        id,
        capacity: Some("cap-1".into()),
        lane: lane.into(),
        label: format!("item {id} <&>"),
        operation: "dataset.refresh".into(),
        status: status.into(),
        start: Timestamp::from_second(1_800_000_000 + start).expect("time"),
        end: end.map(|e| Timestamp::from_second(1_800_000_000 + e).expect("time")),
        expected: Some(120.0),
        overran: status == "Failed",
        attached: id == 2,
        cancel_requested: false,
        error_code: (status == "Failed").then(|| "ModelRefreshFailed".into()),
        error_message: (status == "Failed").then(|| "credentials <missing>".into()),
        request_id: None,
        execution: None,
    }
}

#[test]
fn the_page_has_one_bar_per_operation_escapes_text_and_fetches_nothing() {
    let bars = vec![
        bar(1, "Sales", "Completed", 0, Some(300)),
        bar(2, "Sales", "Failed", 100, Some(400)),
        bar(3, "Finance", "Running", 200, None),
        bar(4, "Finance", "Skipped", 250, Some(250)),
    ];
    let end = Timestamp::from_second(1_800_000_900).expect("time");
    let totals = Totals::of(&bars, end);
    let html = render("night <1>", &bars, bars[0].start, end, &totals);
    assert_eq!(html.matches("<rect class=\"bar").count(), 4);
    assert!(html.contains("item 1 &lt;&amp;&gt;"));
    assert!(html.contains("night &lt;1&gt;"));
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script"));
    assert!(
        html.contains("credentials &lt;missing&gt;"),
        "the error table"
    );
    assert_eq!(totals.count, 4);
    assert_eq!(totals.overruns, 1);
    assert_eq!(totals.by_status.get("Completed"), Some(&1));
    assert_eq!(totals.makespan, 900.0);
    assert_eq!(totals.longest.as_ref().map(|l| l.1), Some(300.0));
    // Two overlapping bars of Sales stack in two rows.
    assert_eq!(lanes_of(&html), 1);
}

fn lanes_of(html: &str) -> usize {
    html.matches("class=\"group-label\"").count()
}

#[test]
fn human_durations_read_well() {
    assert_eq!(html::human(12.34), "12.3s");
    assert_eq!(html::human(245.0), "4m 05s");
    assert_eq!(html::human(3720.0), "1h 02m");
}
