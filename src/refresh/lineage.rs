//! `then: downstream`: what a dataflow's refresh should be followed by, in lineage order.
//!
//! The graph comes from the lineage the Power BI API documents: each Gen1 dataflow's upstream
//! dataflows (`…/dataflows/{id}/upstreamDataflows`, the dataflows it links to) and each
//! workspace's model → dataflow links (`…/datasets/upstreamDataflows`), across every workspace
//! the profile sees. From the refreshed dataflow it follows, transitively, the dataflows that
//! link to it and the models that read any of them; each step depends on every upstream step in
//! the cascade. Dataflow Gen2 items have no such lineage in the API and are not followed.

use std::collections::{HashMap, HashSet};

use super::Kind;
use super::items::Catalog;
use crate::error::Error;
use crate::powerbi::wire::Group;

/// One item downstream of the refreshed dataflow.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// A Gen1 dataflow or a semantic model.
    pub kind: Kind,
    /// Its workspace.
    pub group: Group,
    /// Its id.
    pub id: String,
    /// Ids of the dataflows in the cascade it reads (the root's included).
    pub upstream: Vec<String>,
}

/// Every item downstream of dataflow `root`, dataflows first in discovery order, then models.
pub(crate) async fn downstream(catalog: &Catalog<'_>, root: &str) -> Result<Vec<Step>, Error> {
    let groups = catalog.groups().await?;
    let key = |id: &str| id.to_ascii_lowercase();
    // Dataflow id → the dataflows that link to it.
    let mut readers: HashMap<String, Vec<(Group, String)>> = HashMap::new();
    for group in &groups {
        for df in catalog.gen1(group).await? {
            for up in catalog
                .pbi()
                .upstream_dataflows(&group.id, &df.object_id)
                .await?
            {
                readers
                    .entry(key(&up.target_dataflow_id))
                    .or_default()
                    .push((group.clone(), df.object_id.clone()));
            }
        }
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut queue = vec![root.to_string()];
    let mut seen: HashSet<String> = HashSet::from([key(root)]);
    while let Some(upstream) = queue.pop() {
        for (group, reader) in readers.get(&key(&upstream)).cloned().unwrap_or_default() {
            if key(&reader) == key(root) {
                return Err(Error::task(
                    "then",
                    format!(
                        "the lineage downstream of dataflow {root} leads back to it: {upstream} → {root}"
                    ),
                    "a dataflow cannot (even indirectly) read itself: fix the links in the service, or refresh the items as `targets` with explicit `dependsOn`",
                ));
            }
            let i = *index.entry(key(&reader)).or_insert_with(|| {
                steps.push(Step {
                    kind: Kind::Gen1,
                    group: group.clone(),
                    id: reader.clone(),
                    upstream: Vec::new(),
                });
                steps.len() - 1
            });
            if !steps[i].upstream.iter().any(|u| key(u) == key(&upstream)) {
                steps[i].upstream.push(upstream.clone());
            }
            if seen.insert(key(&reader)) {
                queue.push(reader);
            }
        }
    }
    for group in &groups {
        for link in catalog.pbi().datasets_upstream_dataflows(&group.id).await? {
            if !seen.contains(&key(&link.dataflow_object_id)) {
                continue;
            }
            let i = *index
                .entry(key(&link.dataset_object_id))
                .or_insert_with(|| {
                    steps.push(Step {
                        kind: Kind::Model,
                        group: group.clone(),
                        id: link.dataset_object_id.clone(),
                        upstream: Vec::new(),
                    });
                    steps.len() - 1
                });
            if !steps[i].upstream.contains(&link.dataflow_object_id) {
                steps[i].upstream.push(link.dataflow_object_id.clone());
            }
        }
    }
    if let Some(cycle) = cycle(&steps, root) {
        return Err(Error::task(
            "then",
            format!("the lineage downstream of dataflow {root} has a cycle: {cycle}"),
            "a dataflow cannot (even indirectly) read itself: fix the links in the service, or refresh the items as `targets` with explicit `dependsOn`",
        ));
    }
    Ok(steps)
}

/// A cycle among the steps (the root excluded), as `a → b → a`.
fn cycle(steps: &[Step], root: &str) -> Option<String> {
    let ids: Vec<String> = steps.iter().map(|s| s.id.to_ascii_lowercase()).collect();
    let deps: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| {
            s.upstream
                .iter()
                .filter(|u| !u.eq_ignore_ascii_case(root))
                .filter_map(|u| ids.iter().position(|i| i.eq_ignore_ascii_case(u)))
                .collect()
        })
        .collect();
    let names: Vec<String> = steps.iter().map(|s| s.id.clone()).collect();
    find_cycle(&deps).map(|c| {
        c.iter()
            .map(|i| names[*i].as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    })
}

/// A cycle in a dependency graph (`deps[i]`: the nodes `i` depends on), as the nodes along it
/// with the first repeated at the end; `None` when the graph is acyclic.
pub(crate) fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    // Depth-first, iteratively: 0 unvisited, 1 on the current path, 2 done.
    let mut mark = vec![0u8; deps.len()];
    for start in 0..deps.len() {
        if mark[start] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = 1;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                match mark[dep] {
                    0 => {
                        mark[dep] = 1;
                        path.push((dep, 0));
                    }
                    1 => {
                        let from = path.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<usize> = path[from..].iter().map(|(n, _)| *n).collect();
                        cycle.push(dep);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                mark[node] = 2;
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::find_cycle;

    #[test]
    fn cycles_are_found_with_their_path_and_dags_pass() {
        assert_eq!(find_cycle(&[vec![], vec![0], vec![0, 1]]), None);
        assert_eq!(
            find_cycle(&[vec![1], vec![2], vec![0]]),
            Some(vec![0, 1, 2, 0])
        );
        assert_eq!(find_cycle(&[vec![], vec![1]]), Some(vec![1, 1]));
        assert_eq!(
            find_cycle(&[vec![], vec![0, 2], vec![3], vec![1]]),
            Some(vec![1, 2, 3, 1])
        );
    }
}
