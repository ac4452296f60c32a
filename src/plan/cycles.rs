//! Dependency cycles among tasks, each named so the user can see which `needs` to cut.
//!
//! Two kinds of edge make a task wait: its `needs`, and the task before it on the same
//! instance (an instance's tasks run one after another in file order, SPEC.md
//! "Scheduling"). So `a` (on `dev`) needing `c`, `c` needing `b`, and `b` coming after `a`
//! on `dev` can never run, though the `needs` alone form no cycle. Each cycle is reported
//! once, starting at a `needs` edge so the problem points at a line the user can change.

use std::collections::{BTreeMap, VecDeque};

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
    // One pass (Tarjan) finds every strongly connected group: linear in tasks + edges,
    // where a reachability search per task was quadratic on a long `needs` chain.
    let group = components(&edges);
    let mut size = vec![0usize; tasks.len()];
    for &g in &group {
        size[g] += 1;
    }
    let mut reported = vec![false; tasks.len()];
    let mut cycles = Vec::new();
    for start in 0..tasks.len() {
        let g = group[start];
        // Self-needs are not edges here: a group of one is never a cycle.
        if size[g] < 2 || reported[g] {
            continue;
        }
        reported[g] = true;
        if let Some(path) = shortest_cycle(start, &edges, |n| group[n] == g) {
            cycles.push(describe(tasks, &path));
        }
    }
    cycles
}

/// The strongly connected group of each node (Tarjan's algorithm, iterative so a chain
/// of 100,000 tasks cannot overflow the stack).
fn components(edges: &[Vec<(usize, Edge)>]) -> Vec<usize> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut group = vec![UNSEEN; n];
    let mut stack = Vec::new();
    let mut next_index = 0;
    let mut groups = 0;
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        // (node, next edge to look at)
        let mut calls = vec![(root, 0usize)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut k)) = calls.last_mut() {
            if let Some(&(w, _)) = edges[v].get(*k) {
                *k += 1;
                if index[w] == UNSEEN {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    group[w] = groups;
                    if w == v {
                        break;
                    }
                }
                groups += 1;
            }
        }
    }
    group
}

/// The shortest way from `start` back to itself, as (node, edge taken from it) steps.
/// Only nodes for which `inside` holds (the start's group) are searched: a cycle never
/// leaves its group, and a search over the whole plan per cycle would be quadratic again.
fn shortest_cycle(
    start: usize,
    edges: &[Vec<(usize, Edge)>],
    inside: impl Fn(usize) -> bool,
) -> Option<Vec<(usize, Edge)>> {
    let mut came_from: BTreeMap<usize, (usize, Edge)> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for &(to, edge) in edges[n].iter().filter(|(to, _)| inside(*to)) {
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
        Task::minimal(id, instance, needs)
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
