//! The process layer under attack (issue 3): agents that flood their output, never stop,
//! leave processes behind or ignore SIGTERM; signals and `kill -9` to the runner; retries,
//! the workspace lock, hostile workspaces, huge prompts, an unwritable run directory and
//! secrets. Every test drives the built binary on a temporary folder with real processes,
//! and every wait is bounded: a hang fails the test instead of stalling the suite.
//!
//! Processes are recognised by a marker unique to this test process (`sleep 3001.0012345`:
//! a base number per test, the pid as the fraction), so concurrent suites cannot confuse
//! each other's leftovers, and a [`Reaper`] kills whatever a failing test left behind.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::{Project, processes_with, task, wait_for};

/// An agent that runs `script` with `/bin/sh -c`, as a YAML flow mapping (JSON string
/// escapes are valid YAML).
fn inline_agent(script: &str) -> String {
    format!(
        "{{kind: generic, command: /bin/sh, args: [\"-c\", {}]}}",
        serde_json::to_string(script).unwrap()
    )
}

/// A one-instance plan named `name` whose instance `w` runs `script`; `top` holds extra
/// top-level lines and `tasks` the task list (YAML lines).
fn one_instance_plan(p: &Project, name: &str, top: &str, script: &str, tasks: &str) -> PathBuf {
    p.plan(&format!(
        "name: {name}\n{top}\ninstances:\n  - name: w\n    role: developer\n    agent: {}\ntasks:\n{tasks}",
        inline_agent(script)
    ))
}

/// A number unique to this test process and `base`, usable as `sleep`'s argument: the
/// process's pid, zero-padded, is the fraction (so no marker is a prefix of another).
fn marker(base: u32) -> String {
    format!("{base}.{:07}", std::process::id())
}

/// Live processes carrying `sleep <marker>` (in their own or their shell's command line).
fn survivors(mark: &str) -> Vec<String> {
    processes_with(&format!("sleep {mark}"))
}

/// Asserts that no process with `mark` is left, allowing a generous moment for the kernel
/// to finish delivering SIGKILL.
fn assert_no_survivor(mark: &str) {
    let gone = wait_for(Duration::from_secs(5), || survivors(mark).is_empty());
    assert!(gone, "processes survived the run: {:#?}", survivors(mark));
}

/// Kills every process with the marker when dropped, so a failing test leaves nothing
/// behind.
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        for line in survivors(&self.0) {
            if let Some(pid) = line.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// A runner started in the background, its output going to files in the project (so an
/// unread pipe can never stall it). Killed if still running when dropped.
struct Runner {
    child: Child,
    started: Instant,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// How a runner ended.
#[derive(Debug)]
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

impl Ended {
    fn text(&self) -> String {
        format!(
            "exit: {:?} signal: {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.signal, self.elapsed, self.stdout, self.stderr
        )
    }
}

static OUTPUTS: AtomicUsize = AtomicUsize::new(0);

fn spawn(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Runner {
    let n = OUTPUTS.fetch_add(1, Ordering::SeqCst);
    let stdout = p.join(&format!("runner-{n}.out"));
    let stderr = p.join(&format!("runner-{n}.err"));
    let mut cmd = p.command();
    cmd.args(args)
        .stdout(Stdio::from(File::create(&stdout).unwrap()))
        .stderr(Stdio::from(File::create(&stderr).unwrap()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    Runner {
        child: cmd.spawn().expect("borg-batch starts"),
        started: Instant::now(),
        stdout,
        stderr,
    }
}

impl Runner {
    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signalling the runner");
    }

    fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits at most `limit` for the runner to exit; panics (after killing it) if it does
    /// not.
    fn wait(mut self, limit: Duration) -> Ended {
        use std::os::unix::process::ExitStatusExt;
        let end = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "borg-batch did not finish within {limit:?}\n--- stderr\n{}",
                    self.stderr_now()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ended {
            code: status.code(),
            signal: status.signal(),
            elapsed: self.started.elapsed(),
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: self.stderr_now(),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs borg-batch to completion, at most `limit`.
fn run_within(p: &Project, args: &[&str], limit: Duration) -> Ended {
    spawn(p, args, &[]).wait(limit)
}

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// The latest run's file `rel` (a log, say), as bytes.
fn run_file(p: &Project, plan: &str, rel: &str) -> Vec<u8> {
    let path = p.latest(plan).join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The log of a task's final attempt, as text.
fn task_log(p: &Project, plan: &str, t: &Value) -> String {
    let rel = t["log"].as_str().expect("the task has a log");
    String::from_utf8_lossy(&run_file(p, plan, rel)).into_owned()
}

#[test]
fn more_than_a_pipe_on_stdout_and_stderr_does_not_deadlock() {
    let p = Project::new();
    // 16 alternations of 64 KiB on each stream: 1 MiB each, interleaved, every write a full
    // pipe buffer, so a runner that drained only one stream (or only after `wait`) hangs.
    let script = "i=0; while [ $i -lt 16 ]; do \
        head -c 65536 /dev/zero | tr '\\000' 'O'; \
        head -c 65536 /dev/zero | tr '\\000' 'E' >&2; \
        i=$((i+1)); done; echo; echo OUT-END; echo ERR-END >&2";
    one_instance_plan(
        &p,
        "flood2",
        "timeout: 60s\ngrace: 1s",
        script,
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(60));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("flood2");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    assert_eq!(t["leaked"], false);
    let log = task_log(&p, "flood2", t);
    assert!(
        log.contains("OUT-END") && log.contains("ERR-END"),
        "the log lacks an end marker"
    );
    let count = |c: char| log.chars().filter(|&x| x == c).count();
    // The log's first line (the command) holds a few of these letters too.
    assert!(
        (1 << 20..(1 << 20) + 100).contains(&count('O')),
        "stdout bytes: {}",
        count('O')
    );
    assert!(
        (1 << 20..(1 << 20) + 100).contains(&count('E')),
        "stderr bytes: {}",
        count('E')
    );
    assert!(!log.contains("[truncated"), "2 MiB is under the cap");
}

#[test]
fn endless_output_times_out_with_a_capped_log() {
    let p = Project::new();
    one_instance_plan(
        &p,
        "endless",
        "grace: 1s",
        // Long lines: a debug-build runner on a loaded machine still gets well past the
        // 8 MiB cap in 2 s (two-byte lines cost it far more per byte).
        "yes \"$(head -c 1000 /dev/zero | tr '\\000' y)\"",
        "  - {id: t, instance: w, prompt: go, timeout: 2s}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(30));
    assert_eq!(ended.code, Some(1), "{}", ended.text());
    let report = p.report("endless");
    let t = task(&report, "t");
    assert_eq!(t["status"], "timed_out");
    assert_eq!(t["exit_code"], Value::Null, "ended by a signal");
    let log = run_file(&p, "endless", t["log"].as_str().unwrap());
    assert!(
        log.len() < 9 * 1024 * 1024,
        "the log is not capped: {} bytes",
        log.len()
    );
    let text = String::from_utf8_lossy(&log);
    let marker = text
        .find("[truncated ")
        .expect("the log has a truncation marker");
    let n: u64 = text[marker + 11..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 0, "{n} bytes truncated");
    // Head and tail both hold output.
    assert!(
        text[..marker].trim_end().ends_with('y'),
        "the head holds output"
    );
    assert!(text[marker..].contains("yy\nyy"), "the tail holds output");
}

#[test]
fn a_background_child_holding_stdout_is_leaked_and_killed() {
    let p = Project::new();
    let mark = marker(3001);
    let _reaper = Reaper(mark.clone());
    one_instance_plan(
        &p,
        "leak",
        "timeout: 5m\ngrace: 1s",
        &format!("sleep {mark} & echo agent done"),
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(15));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("leak");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    assert_eq!(t["leaked"], true);
    assert!(task_log(&p, "leak", t).contains("agent done"));
    assert_no_survivor(&mark);
}

#[test]
fn a_silent_grandchild_is_killed_but_not_leaked() {
    let p = Project::new();
    let mark = marker(3002);
    let _reaper = Reaper(mark.clone());
    one_instance_plan(
        &p,
        "silent",
        "timeout: 5m\ngrace: 1s",
        &format!("sleep {mark} >/dev/null 2>&1 & echo agent done"),
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(15));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("silent");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    assert_eq!(t["leaked"], false);
    assert_no_survivor(&mark);
}

#[test]
fn an_agent_ignoring_sigterm_is_killed_after_the_grace_period() {
    let p = Project::new();
    let mark = marker(3003);
    let _reaper = Reaper(mark.clone());
    // The ignored TERM is inherited by the background sleep as well.
    one_instance_plan(
        &p,
        "stubborn",
        "grace: 1s",
        &format!("trap '' TERM; sleep {mark} & sleep {mark}"),
        "  - {id: t, instance: w, prompt: go, timeout: 1s}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(20));
    assert_eq!(ended.code, Some(1), "{}", ended.text());
    let report = p.report("stubborn");
    let t = task(&report, "t");
    assert_eq!(t["status"], "timed_out");
    assert!(
        t["duration_ms"].as_u64().unwrap() >= 2000,
        "SIGKILL came before the grace period"
    );
    assert_no_survivor(&mark);
}

/// Starts a run whose first task sleeps (the second would start after it), sends `signal`
/// to the runner once the first has started, and checks the run ends as interrupted.
/// `stubborn`: the agent ignores every termination signal (only SIGKILL after the grace
/// period ends it).
fn interrupt(signal: Signal, base: u32, stubborn: bool) {
    let p = Project::new();
    let mark = marker(base);
    let _reaper = Reaper(mark.clone());
    let started = p.join("started");
    let trap = if stubborn {
        "trap '' INT TERM HUP; "
    } else {
        ""
    };
    one_instance_plan(
        &p,
        "sig",
        "timeout: 5m\ngrace: 1s",
        &format!(
            "{trap}touch '{}-'$BORG_TASK_ID; sleep {mark} & sleep {mark}; wait",
            started.display()
        ),
        "  - {id: long, instance: w, prompt: go}\n  - {id: later, instance: w, prompt: go}\n",
    );
    let runner = spawn(&p, &["plan.yaml"], &[]);
    let long_started = p.join("started-long");
    assert!(
        wait_for(SECS(20), || long_started.exists()),
        "the task never started\n{}",
        runner.stderr_now()
    );
    assert!(!survivors(&mark).is_empty(), "the agent is not running");
    let sent = Instant::now();
    runner.signal(signal);
    let ended = runner.wait(SECS(20));
    assert_eq!(ended.code, Some(130), "{}", ended.text());
    let after = sent.elapsed();
    assert!(after < SECS(15), "exit took {after:?} after {signal}");
    let report = p.report("sig");
    assert_eq!(task(&report, "long")["status"], "interrupted", "{report:#}");
    assert_eq!(
        task(&report, "later")["status"],
        "interrupted",
        "{report:#}"
    );
    assert_eq!(report["summary"]["interrupted"], 2);
    assert!(
        !p.join("started-later").exists(),
        "a task started after the signal"
    );
    assert_no_survivor(&mark);
}

#[test]
fn sigint_to_the_runner_interrupts_and_leaves_nothing() {
    interrupt(Signal::SIGINT, 3010, false);
}

#[test]
fn sigterm_to_the_runner_ends_even_an_agent_that_ignores_it() {
    interrupt(Signal::SIGTERM, 3011, true);
}

#[test]
fn sighup_to_the_runner_interrupts_and_leaves_nothing() {
    interrupt(Signal::SIGHUP, 3012, false);
}

#[test]
fn a_second_signal_kills_at_once_without_waiting_for_the_grace_period() {
    let p = Project::new();
    let mark = marker(3013);
    let _reaper = Reaper(mark.clone());
    let started = p.join("started");
    one_instance_plan(
        &p,
        "sig2",
        "timeout: 5m\ngrace: 1m",
        &format!(
            "trap '' INT TERM HUP; touch '{}'; sleep {mark}",
            started.display()
        ),
        "  - {id: long, instance: w, prompt: go}\n",
    );
    let runner = spawn(&p, &["plan.yaml"], &[]);
    assert!(
        wait_for(SECS(20), || started.exists()),
        "{}",
        runner.stderr_now()
    );
    runner.signal(Signal::SIGINT);
    // Two signals sent before the first is handled would be merged into one.
    assert!(
        wait_for(SECS(10), || runner.stderr_now().contains("received SIGINT")),
        "the runner did not report the first signal: {}",
        runner.stderr_now()
    );
    assert!(
        !survivors(&mark).is_empty(),
        "the agent ignores SIGINT and waits for the grace period"
    );
    let sent = Instant::now();
    runner.signal(Signal::SIGINT);
    let ended = runner.wait(SECS(30));
    assert_eq!(ended.code, Some(130), "{}", ended.text());
    assert!(
        sent.elapsed() < SECS(20),
        "the second signal did not kill at once"
    );
    assert_eq!(task(&p.report("sig2"), "long")["status"], "interrupted");
    assert_no_survivor(&mark);
}

/// The finished tasks in the latest run's journal.
fn journal_tasks(p: &Project, plan: &str) -> Vec<Value> {
    let Ok(dir) = std::fs::read_link(p.join(&format!("runs/{plan}/latest"))) else {
        return Vec::new();
    };
    let dir = p.join(&format!("runs/{plan}")).join(dir);
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "task")
        .map(|v| v["report"].clone())
        .collect()
}

#[test]
fn kill_9_of_the_runner_then_rerun_failed_runs_exactly_what_had_not_passed() {
    let p = Project::new();
    let mark = marker(3004);
    let _reaper = Reaper(mark.clone());
    let ran = p.join("ran");
    let plan = |b_script: &str, tasks: &str| {
        let script = format!(
            "echo \"$BORG_TASK_ID\" >> '{}'; case \"$BORG_TASK_ID\" in b) {b_script};; esac; echo ok",
            ran.display()
        );
        let agent = inline_agent(&script);
        p.plan(&format!(
            "name: crash\ntimeout: 5m\ngrace: 1s\ninstances:\n  \
             - {{name: one, role: developer, agent: {agent}}}\n  \
             - {{name: two, role: developer, agent: {agent}}}\ntasks:\n{tasks}"
        ));
    };
    plan(
        &format!("touch '{}'; sleep {mark}", p.join("b-started").display()),
        "  - {id: a, instance: one, prompt: a}\n  - {id: z, instance: one, prompt: z}\n  \
         - {id: b, instance: two, prompt: b}\n",
    );
    let runner = spawn(&p, &["plan.yaml"], &[]);
    let a_done = || {
        journal_tasks(&p, "crash")
            .iter()
            .any(|t| t["id"] == "a" && t["status"] == "passed")
    };
    assert!(
        wait_for(SECS(20), || a_done() && p.join("b-started").exists()),
        "a never finished or b never started\n{}",
        runner.stderr_now()
    );
    runner.signal(Signal::SIGKILL);
    let ended = runner.wait(SECS(10));
    assert_eq!(ended.signal, Some(9));
    assert!(
        !p.latest("crash").join("report.json").exists(),
        "a killed run wrote no report"
    );
    assert!(
        !survivors(&mark).is_empty(),
        "the killed runner's agent should still be running (nothing could end it)"
    );

    // The plan changes: b is fast now, z is gone, c is new.
    plan(
        "true",
        "  - {id: a, instance: one, prompt: a}\n  - {id: b, instance: two, prompt: b}\n  \
         - {id: c, instance: one, prompt: c}\n",
    );
    std::fs::write(&ran, "").unwrap();
    let ended = run_within(&p, &["plan.yaml", "--rerun-failed"], SECS(30));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    // The lock takeover ended the group the killed run left behind.
    assert_no_survivor(&mark);
    let mut ran_now: Vec<String> = std::fs::read_to_string(&ran)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    ran_now.sort();
    assert_eq!(
        ran_now,
        ["b", "c"],
        "exactly the tasks that had not passed ran"
    );
    let report = p.report("crash");
    let a = task(&report, "a");
    assert_eq!(a["status"], "passed");
    assert_eq!(a["carried_over"], true);
    for id in ["b", "c"] {
        assert_eq!(task(&report, id)["status"], "passed", "{id}");
        assert_eq!(task(&report, id)["carried_over"], false, "{id}");
    }
    let ids: Vec<&str> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"z"), "a removed task is ignored: {ids:?}");
    assert_eq!(report["summary"]["total"], 3);
}

#[test]
fn flaky_then_passing_is_passed_and_flaky_and_a_retry_starts_from_the_before_state() {
    let p = Project::new();
    let record = p.join("record");
    let script = format!(
        "if [ -e junk ]; then seen=yes; else seen=no; fi; \
         echo \"attempt $BORG_ATTEMPT junk=$seen\" >> '{}'; \
         if [ \"$BORG_ATTEMPT\" = 1 ]; then echo junk > junk; echo changed >> kept.txt; exit 1; fi; \
         echo good > good.txt",
        record.display()
    );
    p.write("tpl/kept.txt", "original\n");
    one_instance_plan(
        &p,
        "flaky",
        "timeout: 1m",
        &script,
        "  - {id: t, instance: w, prompt: go, retries: 2}\n",
    );
    // The template makes kept.txt part of the before-state.
    let plan = p
        .read("plan.yaml")
        .replace("role: developer\n", "role: developer\n    template: tpl\n");
    p.write("plan.yaml", plan);
    let ended = run_within(&p, &["plan.yaml"], SECS(30));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("flaky");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    assert_eq!(t["flaky"], true);
    assert_eq!(t["attempts"], 2);
    let history = t["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["status"], "failed");
    assert_eq!(history[1]["status"], "passed");
    assert_eq!(report["summary"]["flaky"], 1);
    assert_eq!(report["summary"]["passed"], 1);
    assert_eq!(
        p.read("record"),
        "attempt 1 junk=no\nattempt 2 junk=no\n",
        "attempt 2 saw attempt 1's junk"
    );
    let files = p.join("workspaces/w/project-files");
    assert!(!files.join("junk").exists());
    assert_eq!(
        std::fs::read_to_string(files.join("kept.txt")).unwrap(),
        "original\n"
    );
    // The changes compare the before-state with the final attempt.
    let paths: Vec<&str> = t["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["good.txt"]);
    // Each attempt kept its own log.
    assert_eq!(history[0]["log"], "logs/t.1.log");
    assert!(p.latest("flaky").join("logs/t.1.log").exists());
}

#[test]
fn always_failing_with_two_retries_makes_exactly_three_attempts() {
    let p = Project::new();
    let record = p.join("record");
    one_instance_plan(
        &p,
        "failing",
        "timeout: 1m",
        &format!("echo \"$BORG_ATTEMPT\" >> '{}'; exit 3", record.display()),
        "  - {id: t, instance: w, prompt: go, retries: 2}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(30));
    assert_eq!(ended.code, Some(1), "{}", ended.text());
    let report = p.report("failing");
    let t = task(&report, "t");
    assert_eq!(t["status"], "failed");
    assert_eq!(t["attempts"], 3);
    assert_eq!(t["flaky"], false);
    assert_eq!(t["exit_code"], 3);
    assert_eq!(t["history"].as_array().unwrap().len(), 3);
    assert_eq!(p.read("record"), "1\n2\n3\n");
    assert_eq!(report["summary"]["failed"], 1);
    assert_eq!(report["summary"]["flaky"], 0);
}

#[test]
fn a_second_run_on_the_same_workspaces_is_refused_while_the_first_runs() {
    let p = Project::new();
    let release = p.join("release");
    let started = p.join("started");
    one_instance_plan(
        &p,
        "locked",
        "timeout: 1m",
        &format!(
            "touch '{}'; n=0; while [ ! -e '{}' ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done",
            started.display(),
            release.display()
        ),
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let first = spawn(&p, &["plan.yaml"], &[]);
    assert!(
        wait_for(SECS(20), || started.exists()),
        "{}",
        first.stderr_now()
    );
    let second = run_within(&p, &["plan.yaml"], SECS(20));
    assert_eq!(second.code, Some(2), "{}", second.text());
    assert!(
        second.stderr.contains("in use by another borg-batch run"),
        "{}",
        second.text()
    );
    std::fs::write(&release, "").unwrap();
    let first = first.wait(SECS(30));
    assert_eq!(first.code, Some(0), "{}", first.text());
    assert_eq!(
        task(&p.report("locked"), "t")["status"],
        "passed",
        "the refused run touched nothing"
    );
    std::fs::remove_file(&started).unwrap();
    let third = run_within(&p, &["plan.yaml"], SECS(30));
    assert_eq!(third.code, Some(0), "{}", third.text());
    assert!(started.exists());
}

#[test]
fn fifos_in_a_template_and_made_by_the_agent_do_not_block() {
    let p = Project::new();
    p.write("tpl/file.txt", "hello\n");
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
    nix::unistd::mkfifo(&p.join("tpl/pipe"), mode).unwrap();
    one_instance_plan(
        &p,
        "fifo",
        "timeout: 1m",
        "mkfifo agent-pipe; echo new > new.txt",
        "  - {id: t, instance: w, prompt: go}\n  - {id: u, instance: w, prompt: again}\n",
    );
    let plan = p
        .read("plan.yaml")
        .replace("role: developer\n", "role: developer\n    template: tpl\n");
    p.write("plan.yaml", plan);
    let ended = run_within(&p, &["plan.yaml"], SECS(30));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("fifo");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    let notes = t["notes"].to_string();
    assert!(
        notes.contains("`pipe`"),
        "no note about the template's FIFO: {notes}"
    );
    let files = p.join("workspaces/w/project-files");
    assert!(files.join("file.txt").exists());
    assert!(!files.join("pipe").exists(), "the FIFO was copied");
    let paths: Vec<&str> = t["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["new.txt"], "the agent's FIFO is no change");
    // The next task's before-snapshot meets the FIFO too, and skips it.
    let u = task(&report, "u");
    assert_eq!(u["status"], "passed");
    let notes = u["notes"].to_string();
    assert!(
        notes.contains("agent-pipe"),
        "no note about the agent's FIFO: {notes}"
    );
}

#[test]
fn a_1_gb_sparse_file_is_sized_not_diffed() {
    let p = Project::new();
    one_instance_plan(
        &p,
        "sparse",
        "timeout: 1m",
        "truncate -s 1G big.bin",
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(60));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("sparse");
    let t = task(&report, "t");
    assert_eq!(t["status"], "passed");
    let c = crate::support::change(t, "big.bin");
    assert_eq!(c["kind"], "added");
    assert_eq!(c["size_after"], 1_073_741_824_u64);
    // A size line, not a unified diff.
    let diff = c["diff"].as_str().unwrap_or("");
    assert!(
        !diff.contains("@@") && !diff.contains("+++"),
        "a diff of a 1 GB file: {diff:.200}"
    );
    assert_eq!(t["patch"], Value::Null);
    // Nothing near that size was copied anywhere by the runner.
    let du = std::process::Command::new("du")
        .arg("-sk")
        .arg(p.path())
        .output()
        .unwrap();
    let kib: u64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(kib < 100 * 1024, "the project takes {kib} KiB on disk");
}

#[test]
fn a_prompt_of_megabytes_to_an_agent_that_never_reads_it() {
    let p = Project::new();
    let line = "x".repeat(99);
    let prompt: String = (0..50_000).map(|_| format!("      {line}\n")).collect();
    one_instance_plan(
        &p,
        "bigprompt",
        "timeout: 1m",
        "sleep 0.2; echo never read stdin",
        &format!("  - id: t\n    instance: w\n    prompt: |\n{prompt}"),
    );
    let ended = run_within(&p, &["plan.yaml"], SECS(60));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let t = task(&p.report("bigprompt"), "t").clone();
    assert_eq!(t["status"], "passed", "{t:#}");
    assert!(task_log(&p, "bigprompt", &t).contains("never read stdin"));
}

#[test]
fn an_unwritable_run_directory_is_a_clear_error() {
    let p = Project::new();
    p.write("blocker", "a regular file\n");
    one_instance_plan(
        &p,
        "unwritable",
        "timeout: 1m",
        "echo hi",
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = run_within(&p, &["plan.yaml", "--out", "blocker/run"], SECS(30));
    assert!(ended.code.is_some_and(|c| c != 0), "{}", ended.text());
    assert!(
        ended.stderr.contains("blocker"),
        "the error names the path: {}",
        ended.text()
    );
    assert!(!ended.stderr.contains("panicked"), "{}", ended.text());
}

#[test]
fn a_log_that_cannot_be_written_stops_the_run_and_ends_the_children() {
    // Disk full, simulated: the first task's log is a link to /dev/full (ENOSPC on write);
    // a task of another instance is still running then and must be ended.
    let p = Project::new();
    let mark = marker(3005);
    let _reaper = Reaper(mark.clone());
    std::fs::create_dir_all(p.join("out/logs")).unwrap();
    std::os::unix::fs::symlink("/dev/full", p.join("out/logs/t.1.log")).unwrap();
    let other_started = p.join("other-started");
    let full = inline_agent("sleep 1; echo some output that cannot be written");
    let long = inline_agent(&format!(
        "touch '{}'; sleep {mark}",
        other_started.display()
    ));
    p.plan(&format!(
        "name: full\ntimeout: 5m\ngrace: 1s\ninstances:\n  \
         - {{name: one, role: developer, agent: {full}}}\n  \
         - {{name: two, role: developer, agent: {long}}}\ntasks:\n  \
         - {{id: t, instance: one, prompt: go}}\n  - {{id: u, instance: two, prompt: go}}\n"
    ));
    let ended = run_within(&p, &["plan.yaml", "--out", "out"], SECS(30));
    assert!(
        other_started.exists(),
        "the other task never started: {}",
        ended.text()
    );
    assert_eq!(ended.code, Some(3), "{}", ended.text());
    assert!(
        ended.stderr.contains("t.1.log"),
        "the error names the path: {}",
        ended.text()
    );
    assert!(!ended.stderr.contains("panicked"), "{}", ended.text());
    assert_no_survivor(&mark);
}

#[test]
fn secret_values_never_reach_logs_or_reports() {
    let p = Project::new();
    let secret = "sekrit-value-123";
    one_instance_plan(
        &p,
        "secrets",
        "timeout: 1m",
        "echo \"stdout: $MY_API_KEY\"; echo \"stderr: $MY_API_KEY\" >&2; echo \"$MY_API_KEY\" > leaked.txt; \
         printf '{\"type\":\"result\",\"is_error\":false,\"result\":\"%s\"}\\n' \"$MY_API_KEY\"",
        "  - {id: t, instance: w, prompt: go}\n",
    );
    let ended = spawn(&p, &["plan.yaml"], &[("MY_API_KEY", secret)]).wait(SECS(30));
    assert_eq!(ended.code, Some(0), "{}", ended.text());
    let report = p.report("secrets");
    let t = task(&report, "t");
    let log = task_log(&p, "secrets", t);
    assert!(
        log.contains("stdout: [redacted]") && log.contains("stderr: [redacted]"),
        "{log}"
    );
    assert_eq!(t["result"], "[redacted]");
    // Nowhere in the run directory, nor on the runner's own output.
    let mut stack = vec![p.latest("secrets")];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                seen += 1;
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    memchr_find(&bytes, secret.as_bytes()).is_none(),
                    "{} holds the secret",
                    path.display()
                );
            }
        }
    }
    assert!(seen >= 5, "report files, journal and log were checked");
    assert!(!ended.stdout.contains(secret) && !ended.stderr.contains(secret));
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Guards against a vacuous suite: the helpers do see a live marked process.
#[test]
fn survivor_detection_sees_a_live_process() {
    let mark = marker(3099);
    let _reaper = Reaper(mark.clone());
    let mut child = std::process::Command::new("sleep")
        .arg(&mark)
        .spawn()
        .unwrap();
    assert!(wait_for(SECS(5), || !survivors(&mark).is_empty()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(survivors(&mark).is_empty());
}
