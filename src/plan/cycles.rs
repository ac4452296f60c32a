//! Dependency cycles among tasks, each named so the user can see which `needs` to cut.
//!
//! Two kinds of edge make a task wait: its `needs`, and the task before it on the same
//! instance (an instance's tasks run one after another in file order, SPEC.md
//! "Scheduling"). So `a` (on `dev`) needing `c`, `c` needing `b`, and `b` coming after `a`
//! on `dev` can never run, though the `needs` alone form no cycle. Each cycle is reported
//! once, starting at a `needs` edge so the problem points at a line the user can change.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Task;

/// One cycle, ready for a problem message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cycle {
    /// The index of the task whose `needs` entry starts the cycle.
    pub task: usize,
    /// The field path of that `needs` entry, for locating it.
    pub at: String,
    /// `a -> b -> a`, with a note for each instance-order edge.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// `needs[j]`.
    Need(usize),
    /// Runs after this task on the same instance.
    Order,
}

/// Every cycle among `tasks`, one per strongly connected group, in file order. Unknown
/// needs, self-needs and duplicate ids are reported elsewhere and ignored here.
pub(super) fn find_cycles(tasks: &[Task]) -> Vec<Cycle> {
    let mut index = BTreeMap::new();
    for (i, t) in tasks.iter().enumerate() {
        if !t.id.is_empty() {
            index.entry(t.id.as_str()).or_insert(i);
        }
    }
    let mut edges: Vec<Vec<(usize, Edge)>> = vec![Vec::new(); tasks.len()];
    let mut last_on_instance: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, t) in tasks.iter().enumerate() {
        for (j, need) in t.needs.iter().enumerate() {
            if let Some(&target) = index.get(need.as_str())
                && target != i
            {
                edges[i].push((target, Edge::Need(j)));
            }
        }
        if t.instance.is_empty() {
            continue;
        }
        if let Some(prev) = last_on_instance.insert(t.instance.as_str(), i) {
            edges[i].push((prev, Edge::Order));
        }
    }
    let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (from, out) in edges.iter().enumerate() {
        for (to, _) in out {
            reverse[*to].push(from);
        }
    }
    let mut done = BTreeSet::new();
    let mut cycles = Vec::new();
    for start in 0..tasks.len() {
        if done.contains(&start) {
            continue;
        }
        let forward = reachable(start, |n| edges[n].iter().map(|(t, _)| *t).collect());
        if !forward.contains(&start) {
            continue;
        }
        let backward = reachable(start, |n| reverse[n].clone());
        done.extend(forward.intersection(&backward).copied());
        if let Some(path) = shortest_cycle(start, &edges) {
            cycles.push(describe(tasks, &path));
        }
    }
    cycles
}

/// Nodes reachable from `start` in one or more steps.
fn reachable(start: usize, next: impl Fn(usize) -> Vec<usize>) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<usize> = next(start).into();
    while let Some(n) = queue.pop_front() {
        if seen.insert(n) {
            queue.extend(next(n));
        }
    }
    seen
}

/// The shortest way from `start` back to itself, as (node, edge taken from it) steps.
fn shortest_cycle(start: usize, edges: &[Vec<(usize, Edge)>]) -> Option<Vec<(usize, Edge)>> {
    let mut came_from: BTreeMap<usize, (usize, Edge)> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for &(to, edge) in &edges[n] {
            if to == start {
                let mut path = vec![(n, edge)];
                let mut at = n;
                while at != start {
                    let (prev, e) = came_from[&at];
                    path.push((prev, e));
                    at = prev;
                }
                path.reverse();
                return Some(path);
            }
            if let std::collections::btree_map::Entry::Vacant(v) = came_from.entry(to) {
                v.insert((n, edge));
                queue.push_back(to);
            }
        }
    }
    None
}

fn describe(tasks: &[Task], path: &[(usize, Edge)]) -> Cycle {
    // Start at the earliest task (in file order) whose step is a need: order edges only
    // point backwards in the file, so every cycle has one.
    let first = (0..path.len())
        .filter(|&k| matches!(path[k].1, Edge::Need(_)))
        .min_by_key(|&k| path[k].0)
        .unwrap_or(0);
    let steps: Vec<(usize, Edge)> = path[first..]
        .iter()
        .chain(&path[..first])
        .copied()
        .collect();
    let mut names: Vec<&str> = steps.iter().map(|(n, _)| tasks[*n].id.as_str()).collect();
    names.push(names[0]);
    let mut text = names.join(" -> ");
    let notes: Vec<String> = steps
        .iter()
        .enumerate()
        .filter(|(_, (_, e))| *e == Edge::Order)
        .map(|(k, (n, _))| {
            let after = &tasks[*n];
            let before = &tasks[steps[(k + 1) % steps.len()].0];
            format!(
                "`{}` runs after `{}` on instance `{}`",
                after.id, before.id, after.instance
            )
        })
        .collect();
    if !notes.is_empty() {
        text.push_str(&format!(" ({})", notes.join("; ")));
    }
    let (task, edge) = steps[0];
    let at = match edge {
        Edge::Need(j) => format!("tasks[{task}].needs[{j}]"),
        Edge::Order => format!("tasks[{task}].needs"),
    };
    Cycle { task, at, text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, instance: &str, needs: &[&str]) -> Task {
        Task {
            id: id.into(),
            instance: instance.into(),
            prompt: "p".into(),
            needs: needs.iter().map(|n| (*n).to_string()).collect(),
            timeout: None,
            retries: None,
            check: None,
            idle_timeout: None,
            expect: None,
            output_schema: None,
        }
    }

    #[test]
    fn no_cycles_in_a_dag_or_in_file_order() {
        let tasks = [
            task("a", "dev", &[]),
            task("b", "dev", &["a"]),
            task("c", "test", &["a", "b"]),
        ];
        assert_eq!(find_cycles(&tasks), []);
    }

    #[test]
    fn names_a_two_task_cycle_once() {
        let tasks = [task("a", "x", &["b"]), task("b", "y", &["a"])];
        assert_eq!(
            find_cycles(&tasks),
            [Cycle {
                task: 0,
                at: "tasks[0].needs[0]".into(),
                text: "a -> b -> a".into()
            }]
        );
    }

    #[test]
    fn names_each_separate_cycle_and_the_shortest_way_round() {
        let tasks = [
            task("a", "1", &["b"]),
            task("b", "2", &["c", "a"]),
            task("c", "3", &["a"]),
            task("d", "4", &["e"]),
            task("e", "5", &["d"]),
        ];
        let texts: Vec<String> = find_cycles(&tasks).into_iter().map(|c| c.text).collect();
        assert_eq!(texts, ["a -> b -> a", "d -> e -> d"]);
    }

    #[test]
    fn instance_order_closes_a_cycle() {
        let tasks = [
            task("a", "dev", &["c"]),
            task("b", "dev", &[]),
            task("c", "test", &["b"]),
        ];
        let cycles = find_cycles(&tasks);
        assert_eq!(cycles.len(), 1);
        assert_eq!(
            cycles[0].text,
            "a -> c -> b -> a (`b` runs after `a` on instance `dev`)"
        );
        assert_eq!(cycles[0].at, "tasks[0].needs[0]");
    }

    #[test]
    fn a_need_on_a_later_task_of_the_same_instance_is_a_cycle() {
        let tasks = [task("a", "dev", &["b"]), task("b", "dev", &[])];
        let cycles = find_cycles(&tasks);
        assert_eq!(
            cycles[0].text,
            "a -> b -> a (`b` runs after `a` on instance `dev`)"
        );
    }

    #[test]
    fn self_needs_and_unknown_needs_are_left_to_other_checks() {
        let tasks = [task("a", "x", &["a", "zzz"])];
        assert_eq!(find_cycles(&tasks), []);
    }
}
