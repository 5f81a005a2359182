//! Name or id → workspace / semantic model, with close matches when nothing matches.
//!
//! Names match exactly but case-insensitively; several matches are an error, never a guess,
//! because names are not unique (two models called "Budget" in one workspace are common).

use crate::error::Error;
use crate::powerbi::PowerBi;
use crate::powerbi::wire::{Dataset, Group};

/// Whether `text` is a GUID (8-4-4-4-12 hex digits).
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Picks the one item whose id or name is `wanted` from `items`.
pub fn pick<T: Clone>(
    items: &[T],
    wanted: &str,
    kind: &'static str,
    scope: Option<String>,
    id: impl Fn(&T) -> &str,
    name: impl Fn(&T) -> &str,
) -> Result<T, Error> {
    let matches: Vec<&T> = if is_guid(wanted) {
        items
            .iter()
            .filter(|i| id(i).eq_ignore_ascii_case(wanted))
            .collect()
    } else {
        items
            .iter()
            .filter(|i| name(i).eq_ignore_ascii_case(wanted))
            .collect()
    };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::NotFound {
            kind,
            name: wanted.to_string(),
            scope,
            candidates: close_matches(wanted, items.iter().map(&name)),
            ambiguous: false,
        }),
        many => Err(Error::NotFound {
            kind,
            name: wanted.to_string(),
            scope,
            candidates: many
                .iter()
                .map(|i| format!("{} ({})", name(i), id(i)))
                .collect(),
            ambiguous: true,
        }),
    }
}

/// Up to five names similar to `wanted`, best first.
pub fn close_matches<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let wanted_lower = wanted.to_lowercase();
    let mut scored: Vec<(f64, &str)> = names
        .map(|n| {
            let lower = n.to_lowercase();
            let mut score = strsim::jaro_winkler(&wanted_lower, &lower);
            if lower.contains(&wanted_lower) || wanted_lower.contains(&lower) {
                score = score.max(0.9);
            }
            (score, n)
        })
        .filter(|(score, _)| *score >= 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// Resolves a workspace: a `$filter` query first (one call when the name is exact), then the
/// full list for case-insensitive matching and close matches.
pub async fn workspace(pbi: &PowerBi<'_>, wanted: &str) -> Result<Group, Error> {
    let quoted = wanted.replace('\'', "''");
    let filter = if is_guid(wanted) {
        format!("id eq '{quoted}'")
    } else {
        format!("name eq '{quoted}'")
    };
    let filtered = pbi.groups(Some(&filter)).await?;
    if let [one] = filtered.as_slice() {
        return Ok(one.clone());
    }
    let all = if filtered.len() > 1 || is_guid(wanted) {
        filtered
    } else {
        pbi.groups(None).await?
    };
    pick(&all, wanted, "workspace", None, |g| &g.id, |g| &g.name)
}

/// Resolves a semantic model in `group`.
pub async fn dataset(pbi: &PowerBi<'_>, group: &Group, wanted: &str) -> Result<Dataset, Error> {
    let datasets = pbi.datasets(group).await?;
    let scope = Some(format!("workspace {} ({})", group.name, group.id));
    pick(
        &datasets,
        wanted,
        "semantic model",
        scope,
        |d| &d.id,
        |d| &d.name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug)]
    struct Item(&'static str, &'static str);

    fn items() -> Vec<Item> {
        vec![
            Item("11111111-1111-1111-1111-111111111111", "Sales Model"),
            Item("22222222-2222-2222-2222-222222222222", "Budget"),
            Item("33333333-3333-3333-3333-333333333333", "budget"),
            Item("44444444-4444-4444-4444-444444444444", "Orders"),
        ]
    }

    fn find(wanted: &str) -> Result<Item, Error> {
        pick(&items(), wanted, "semantic model", None, |i| i.0, |i| i.1)
    }

    #[test]
    fn names_match_case_insensitively_and_ids_exactly() {
        assert_eq!(
            find("sales model").expect("found").0,
            "11111111-1111-1111-1111-111111111111"
        );
        assert_eq!(
            find("44444444-4444-4444-4444-444444444444")
                .expect("found")
                .1,
            "Orders"
        );
    }

    #[test]
    fn several_matches_are_ambiguous_and_listed_with_ids() {
        let err = find("BUDGET").expect_err("ambiguous");
        assert_eq!(err.exit_code().code(), 4);
        let text = err.to_string();
        assert!(
            text.contains("is ambiguous")
                && text.contains("Budget (22222222")
                && text.contains("budget (33333333"),
            "{text}"
        );
    }

    #[test]
    fn a_miss_lists_close_names() {
        let err = find("Sales Modle").expect_err("missing");
        assert!(
            err.to_string().ends_with("closest names: Sales Model"),
            "{err}"
        );
        let err = find("Inventory").expect_err("missing");
        assert!(!err.to_string().contains("closest"), "{err}");
    }

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("11111111-1111-1111-1111-11111111111a"));
        assert!(!is_guid("Sales"));
        assert!(!is_guid("11111111-1111-1111-1111-11111111111"));
    }
}
