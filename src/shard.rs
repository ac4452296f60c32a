//! Shards (SPEC.md "Beyond one machine"): which of a plan's tasks shard K of N runs, so a
//! CI matrix, GitLab `parallel:` or a Kubernetes Indexed Job can spread one plan over
//! machines without a scheduler of ours (cargo-nextest's `--partition` is the model).
//!
//! The plan's instances are split into **groups** connected by `needs` (work flows only
//! inside a shard, so a group is never split); each group goes whole to one shard:
//!
//! - `K/N` (hash): the shard is `u64::from_le_bytes(blake3(lowest instance name)[..8]) % N
//!   + 1`. A stable hash of the group's own name, so adding a group moves no other one.
//!   Never `DefaultHasher`: its output may change between Rust releases.
//! - `slice:K/N`: groups are dealt out in file order (of their first instance), round robin.
//!
//! `auto` reads the engine's variables (GitLab, CircleCI, Buildkite, Kubernetes). Pure: the
//! environment comes in as a function, nothing is read or written here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;

/// How groups are dealt out to shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// By a stable hash of each group's lowest instance name.
    Hash,
    /// Round robin in file order.
    Slice,
}

/// `--shard` as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    Fixed(Shard),
    /// Read the index and count from the CI engine's environment (hash mode).
    Auto,
}

/// One shard: `index` of `total`, both 1-based. Recorded in run.json and report.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub total: u32,
    pub mode: Mode,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.mode == Mode::Slice {
            f.write_str("slice:")?;
        }
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// Parses `K/N`, `slice:K/N` or `auto`.
pub fn parse(text: &str) -> std::result::Result<ShardSpec, String> {
    if text == "auto" {
        return Ok(ShardSpec::Auto);
    }
    let (mode, rest) = match text.strip_prefix("slice:") {
        Some(rest) => (Mode::Slice, rest),
        None => (Mode::Hash, text.strip_prefix("hash:").unwrap_or(text)),
    };
    let bad = || format!("`{text}` is not a shard: write K/N (1 <= K <= N), slice:K/N or auto");
    let (k, n) = rest.split_once('/').ok_or_else(bad)?;
    let index: u32 = k.trim().parse().map_err(|_| bad())?;
    let total: u32 = n.trim().parse().map_err(|_| bad())?;
    if total == 0 || index == 0 || index > total {
        return Err(bad());
    }
    Ok(ShardSpec::Fixed(Shard { index, total, mode }))
}

/// The engines `--shard auto` knows: (name, index variable, total variable, index base).
const ENGINES: [(&str, &str, &str, u32); 4] = [
    ("GitLab CI", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
    ("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),
    (
        "Buildkite",
        "BUILDKITE_PARALLEL_JOB",
        "BUILDKITE_PARALLEL_JOB_COUNT",
        0,
    ),
    (
        "a Kubernetes Indexed Job",
        "JOB_COMPLETION_INDEX",
        "BORG_SHARD_TOTAL",
        0,
    ),
];

/// Resolves `spec` against the environment (`var` reads one variable). A fixed shard is
/// itself; `auto` takes the first engine whose index variable is set. Missing or bad
/// values are a usage error (exit 2).
pub fn resolve(spec: ShardSpec, var: &dyn Fn(&str) -> Option<String>) -> Result<Shard> {
    if let ShardSpec::Fixed(shard) = spec {
        return Ok(shard);
    }
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    for (engine, index_var, total_var, base) in ENGINES {
        let Some(index) = set(index_var) else {
            continue;
        };
        let total = set(total_var).ok_or_else(|| {
            Error::Usage(format!(
                "`--shard auto`: `{index_var}` is set ({engine}) but `{total_var}` is not"
            ))
        })?;
        let bad = |name: &str, value: &str, what: &str| {
            Error::Usage(format!(
                "`--shard auto`: `{name}={value}` ({engine}) is not {what}"
            ))
        };
        let total_n: u32 = total
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(total_var, &total, "a shard count of at least 1"))?;
        let last = total_n - 1 + base;
        let index_n: u32 = index
            .trim()
            .parse()
            .ok()
            .filter(|i| (base..=last).contains(i))
            .ok_or_else(|| {
                bad(
                    index_var,
                    &index,
                    &format!("an index from {base} to {last}"),
                )
            })?;
        return Ok(Shard {
            index: index_n - base + 1,
            total: total_n,
            mode: Mode::Hash,
        });
    }
    let names: Vec<String> = ENGINES
        .iter()
        .map(|(_, i, t, _)| format!("{i}/{t}"))
        .collect();
    Err(Error::Usage(format!(
        "`--shard auto`: no CI engine's variables are set (looked for {}); pass `--shard K/N`",
        names.join(", ")
    )))
}

/// The plan's instances in groups connected by `needs`, each group's names in file order,
/// the groups in file order of their first instance.
pub fn groups(plan: &Plan) -> Vec<Vec<String>> {
    let position: BTreeMap<&str, usize> = plan
        .instances
        .iter()
        .enumerate()
        .map(|(i, inst)| (inst.name.as_str(), i))
        .collect();
    let mut parent: Vec<usize> = (0..plan.instances.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for task in &plan.tasks {
        let Some(&mine) = position.get(task.instance.as_str()) else {
            continue;
        };
        for need in &task.needs {
            let Some(other) = plan.task(need) else {
                continue;
            };
            let Some(&theirs) = position.get(other.instance.as_str()) else {
                continue;
            };
            let (a, b) = (root(&mut parent, mine), root(&mut parent, theirs));
            // The lower position becomes the root, so a group's root is its first instance.
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut by_root: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, inst) in plan.instances.iter().enumerate() {
        let r = root(&mut parent, i);
        by_root.entry(r).or_default().push(inst.name.clone());
    }
    by_root.into_values().collect()
}

/// The shard (1-based) a group whose lowest instance name is `lowest` goes to by hash.
pub fn hash_shard(lowest: &str, total: u32) -> u32 {
    let digest = blake3::hash(lowest.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    let n = u64::from(total.max(1));
    u32::try_from(u64::from_le_bytes(first) % n).expect("below a u32 total") + 1
}

/// Every instance of the plan and the shard (1-based) it goes to under `total` shards.
pub fn assign(plan: &Plan, total: u32, mode: Mode) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for (i, group) in groups(plan).into_iter().enumerate() {
        let shard = match mode {
            Mode::Hash => {
                let lowest = group.iter().min().expect("a group has an instance");
                hash_shard(lowest, total)
            }
            Mode::Slice => u32::try_from(i % total.max(1) as usize).expect("below a u32 total") + 1,
        };
        for name in group {
            out.insert(name, shard);
        }
    }
    out
}

/// What a sharded run needs to know: every task's shard, and which shard this run is.
#[derive(Debug, Clone)]
pub struct Split {
    pub shard: Shard,
    /// Instance name → the shard that runs its group.
    pub instance_shard: BTreeMap<String, u32>,
    /// Task id → the shard that runs it.
    pub task_shard: BTreeMap<String, u32>,
}

impl Split {
    pub fn new(plan: &Plan, shard: Shard) -> Split {
        let instance_shard = assign(plan, shard.total, shard.mode);
        let task_shard = plan
            .tasks
            .iter()
            .map(|t| (t.id.clone(), instance_shard[&t.instance]))
            .collect();
        Split {
            shard,
            instance_shard,
            task_shard,
        }
    }

    /// Whether this shard runs task `id`.
    pub fn runs(&self, id: &str) -> bool {
        self.task_shard.get(id) == Some(&self.shard.index)
    }

    /// The tasks this shard runs.
    pub fn tasks(&self) -> BTreeSet<String> {
        self.task_shard
            .iter()
            .filter(|(_, s)| **s == self.shard.index)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether this shard runs the group of instance `name`.
    pub fn runs_instance(&self, name: &str) -> bool {
        self.instance_shard.get(name) == Some(&self.shard.index)
    }

    /// The report of a task another shard runs: `skipped`, "in shard M/N".
    pub fn elsewhere_report(&self, task: &crate::plan::Task) -> crate::report::TaskReport {
        let reason = self.elsewhere(&task.id).unwrap_or_default();
        let mut r = crate::report::TaskReport::not_run(
            &task.id,
            &task.instance,
            crate::report::Status::Skipped,
            &reason,
        );
        r.in_shard = self.task_shard.get(&task.id).copied();
        r
    }

    /// The reason a task of another shard is skipped here: "in shard M/N".
    pub fn elsewhere(&self, id: &str) -> Option<String> {
        let m = *self.task_shard.get(id)?;
        (m != self.shard.index).then(|| {
            let other = Shard {
                index: m,
                ..self.shard
            };
            format!("in shard {other}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{AgentSpec, Instance, Task};

    fn plan(instances: &[&str], tasks: &[(&str, &str, &[&str])]) -> Plan {
        Plan {
            path: "p.yaml".into(),
            dir: ".".into(),
            name: "p".into(),
            workspaces: None,
            jobs: None,
            timeout: None,
            retries: None,
            grace: None,
            ignore: vec![],
            agent: AgentSpec::default(),
            instances: instances
                .iter()
                .map(|n| Instance {
                    name: (*n).into(),
                    role: "developer".into(),
                    context: None,
                    template: None,
                    ignore: vec![],
                    agent: AgentSpec::default(),
                })
                .collect(),
            tasks: tasks
                .iter()
                .map(|(id, inst, needs)| Task::minimal(id, inst, needs))
                .collect(),
        }
    }

    /// Twelve instances: a chain a→b→c, a pair d↔e, and seven loners.
    fn big() -> Plan {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];
        let mut tasks: Vec<(&str, &str, &[&str])> = vec![
            ("ta", "a", &[]),
            ("tb", "b", &["ta"]),
            ("tc", "c", &["tb"]),
            ("td", "d", &[]),
            ("te", "e", &["td"]),
            ("te2", "e", &[]),
        ];
        for (id, inst) in [
            ("tf", "f"),
            ("tg", "g"),
            ("th", "h"),
            ("ti", "i"),
            ("tj", "j"),
            ("tk", "k"),
            ("tl", "l"),
        ] {
            tasks.push((id, inst, &[]));
        }
        plan(&names, &tasks)
    }

    #[test]
    fn parses_shards_and_refuses_nonsense() {
        assert_eq!(
            parse("2/5"),
            Ok(ShardSpec::Fixed(Shard {
                index: 2,
                total: 5,
                mode: Mode::Hash
            }))
        );
        assert_eq!(
            parse("slice:1/3").unwrap(),
            ShardSpec::Fixed(Shard {
                index: 1,
                total: 3,
                mode: Mode::Slice
            })
        );
        assert_eq!(parse("auto"), Ok(ShardSpec::Auto));
        for bad in ["0/3", "4/3", "1/0", "x/2", "3", "", "-1/2", "slice:2"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Shard {
                index: 1,
                total: 3,
                mode: Mode::Slice
            }
            .to_string(),
            "slice:1/3"
        );
    }

    #[test]
    fn groups_follow_needs_and_are_in_file_order() {
        let p = big();
        let g = groups(&p);
        assert_eq!(g[0], ["a", "b", "c"]);
        assert_eq!(g[1], ["d", "e"]);
        assert_eq!(g.len(), 9);
    }

    #[test]
    fn every_task_is_in_exactly_one_shard_and_groups_never_split() {
        let p = big();
        for mode in [Mode::Hash, Mode::Slice] {
            for total in 1..=5 {
                let mut seen: BTreeMap<String, u32> = BTreeMap::new();
                for index in 1..=total {
                    let split = Split::new(&p, Shard { index, total, mode });
                    for id in split.tasks() {
                        assert!(seen.insert(id, index).is_none(), "a task in two shards");
                    }
                }
                assert_eq!(seen.len(), p.tasks.len(), "{mode:?} {total}");
                for group in groups(&p) {
                    let shards: BTreeSet<u32> = p
                        .tasks
                        .iter()
                        .filter(|t| group.contains(&t.instance))
                        .map(|t| seen[&t.id])
                        .collect();
                    assert_eq!(shards.len(), 1, "group {group:?} split: {shards:?}");
                }
            }
        }
    }

    #[test]
    fn adding_an_instance_moves_no_other_group() {
        let before = big();
        let mut after = big();
        after.instances.insert(
            0,
            Instance {
                name: "zz-new".into(),
                ..before.instances[0].clone()
            },
        );
        after.tasks.insert(
            0,
            Task {
                id: "tnew".into(),
                instance: "zz-new".into(),
                ..before.tasks[0].clone()
            },
        );
        for total in 1..=5 {
            let old = assign(&before, total, Mode::Hash);
            let new = assign(&after, total, Mode::Hash);
            for (name, shard) in &old {
                assert_eq!(new[name], *shard, "{name} moved with {total} shards");
            }
        }
    }

    #[test]
    fn the_hash_is_blake3_not_a_std_hasher() {
        // Pinned values: a change here moves every group of every user's plan.
        let digest = blake3::hash(b"dev");
        let v = u64::from_le_bytes(digest.as_bytes()[..8].try_into().unwrap());
        assert_eq!(hash_shard("dev", 7), u32::try_from(v % 7).unwrap() + 1);
        assert_eq!(hash_shard("dev", 1), 1);
    }

    #[test]
    fn other_shards_tasks_say_where_they_run() {
        let p = plan(&["a", "b"], &[("ta", "a", &[]), ("tb", "b", &[])]);
        let split = Split::new(
            &p,
            Shard {
                index: 1,
                total: 2,
                mode: Mode::Slice,
            },
        );
        assert!(split.runs("ta"));
        assert_eq!(split.elsewhere("tb").as_deref(), Some("in shard slice:2/2"));
        assert_eq!(split.elsewhere("ta"), None);
    }

    #[test]
    fn each_engine_is_read_with_its_own_base() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        let got = |pairs: &'static [(&'static str, &'static str)]| {
            resolve(ShardSpec::Auto, &env(pairs)).map(|s| (s.index, s.total))
        };
        assert_eq!(
            got(&[("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "3")]).unwrap(),
            (1, 3)
        );
        assert_eq!(
            got(&[("CIRCLE_NODE_INDEX", "0"), ("CIRCLE_NODE_TOTAL", "2")]).unwrap(),
            (1, 2)
        );
        assert_eq!(
            got(&[
                ("BUILDKITE_PARALLEL_JOB", "4"),
                ("BUILDKITE_PARALLEL_JOB_COUNT", "5")
            ])
            .unwrap(),
            (5, 5)
        );
        assert_eq!(
            got(&[("JOB_COMPLETION_INDEX", "2"), ("BORG_SHARD_TOTAL", "3")]).unwrap(),
            (3, 3)
        );
        for bad in [
            &[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "3")][..],
            &[("CI_NODE_INDEX", "4"), ("CI_NODE_TOTAL", "3")],
            &[("CIRCLE_NODE_INDEX", "2"), ("CIRCLE_NODE_TOTAL", "2")],
            &[("JOB_COMPLETION_INDEX", "0")],
            &[
                ("BUILDKITE_PARALLEL_JOB", "x"),
                ("BUILDKITE_PARALLEL_JOB_COUNT", "2"),
            ],
            &[("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "0")],
            &[],
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(bad.to_vec().into());
            let err = got(pairs).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }
}
