//! Test counts from a check command's output, for the report's `tests` field.
//!
//! Reads the summary lines the common runners print — cargo test, cargo nextest, pytest,
//! go test, jest, vitest — plus a plain `N passed, N failed` line for anything else, and
//! adds them up (a check may run several suites; cargo prints one summary per test binary).
//! Colour codes are stripped first. It only recognises whole summary lines of a known
//! shape, so ordinary log text is never counted; when nothing is recognised the answer is
//! `None`, never a guess.

use crate::report::TestCounts;

/// Counts of passed, failed and skipped tests found in `output`, if any.
pub fn parse(output: &str) -> Option<TestCounts> {
    let clean = strip_ansi(output);
    let mut total = TestCounts::default();
    let mut found = false;
    for line in clean.lines() {
        if let Some(counts) = parse_line(line.trim()) {
            total.passed += counts.passed;
            total.failed += counts.failed;
            total.skipped += counts.skipped;
            found = true;
        }
    }
    found.then_some(total)
}

/// One summary line of any known runner.
fn parse_line(line: &str) -> Option<TestCounts> {
    cargo_test(line)
        .or_else(|| nextest(line))
        .or_else(|| go_test(line))
        .or_else(|| jest(line))
        .or_else(|| vitest(line))
        .or_else(|| pytest(line))
        .or_else(|| plain(line))
}

/// Drops ANSI escape sequences: CSI (`ESC [ ... letter`), OSC (`ESC ] ... BEL` or
/// `ESC \`) and two-character escapes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            // Character-set designations (`ESC ( B`) take one more character.
            Some('(' | ')' | '*' | '+') => {
                chars.next();
            }
            _ => {}
        }
    }
    out
}

/// Adds one `N word` item to `counts`. Returns false for a word that is no count at all,
/// so the caller can refuse a line that only looks like a summary.
fn add(counts: &mut TestCounts, n: u64, word: &str) -> bool {
    match word {
        "passed" | "xpassed" => counts.passed += n,
        "failed" | "error" | "errors" | "timed out" => counts.failed += n,
        "skipped" | "ignored" | "xfailed" | "todo" | "pending" => counts.skipped += n,
        // Counted elsewhere or not test outcomes.
        "total" | "measured" | "filtered out" | "deselected" | "warning" | "warnings" | "rerun"
        | "leaky" | "flaky" | "slow" | "notrun" => {}
        _ => return false,
    }
    true
}

/// `3 passed` → (3, "passed"); the word may have spaces (`filtered out`).
fn item(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let (n, word) = text.split_once(' ')?;
    Some((n.parse().ok()?, word.trim()))
}

/// Items separated by `sep`, every one a known `N word`; None otherwise.
fn items(text: &str, sep: char) -> Option<TestCounts> {
    let mut counts = TestCounts::default();
    let mut any = false;
    for part in text.split(sep).filter(|p| !p.trim().is_empty()) {
        // nextest adds notes in parentheses: `4 passed (1 slow)`.
        let part = part.split(" (").next().unwrap_or(part);
        let (n, word) = item(part)?;
        if !add(&mut counts, n, word) {
            return None;
        }
        any = true;
    }
    any.then_some(counts)
}

/// `test result: ok. 3 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.00s`
fn cargo_test(line: &str) -> Option<TestCounts> {
    let rest = line.strip_prefix("test result: ")?;
    let (_status, rest) = rest.split_once(". ")?;
    let mut counts = TestCounts::default();
    for part in rest.split(';') {
        let part = part.trim();
        if part.starts_with("finished in") {
            continue;
        }
        let (n, word) = item(part)?;
        if !add(&mut counts, n, word) {
            return None;
        }
    }
    Some(counts)
}

/// `Summary [   0.010s] 5 tests run: 4 passed, 1 failed, 2 skipped` (also `3/5 tests run`).
fn nextest(line: &str) -> Option<TestCounts> {
    let rest = line.strip_prefix("Summary [")?;
    let (_, rest) = rest.split_once("] ")?;
    let (_, rest) = rest
        .split_once(" tests run: ")
        .or_else(|| rest.split_once(" test run: "))?;
    items(rest, ',')
}

/// `--- PASS: TestX (0.00s)`, one per test (subtests indented, counted too).
fn go_test(line: &str) -> Option<TestCounts> {
    let mut counts = TestCounts::default();
    if line.starts_with("--- PASS: ") {
        counts.passed = 1;
    } else if line.starts_with("--- FAIL: ") {
        counts.failed = 1;
    } else if line.starts_with("--- SKIP: ") {
        counts.skipped = 1;
    } else {
        return None;
    }
    Some(counts)
}

/// `Tests:       1 failed, 3 passed, 4 total` (jest; `Test Suites:` is not counted).
fn jest(line: &str) -> Option<TestCounts> {
    items(line.strip_prefix("Tests:")?, ',')
}

/// ` Tests  3 passed | 1 failed (4)` (vitest; `Test Files` is not counted).
fn vitest(line: &str) -> Option<TestCounts> {
    let rest = line.strip_prefix("Tests ")?;
    let rest = rest.trim_end();
    let open = rest.rfind(" (")?;
    rest[open..].ends_with(')').then_some(())?;
    items(&rest[..open], '|')
}

/// `===== 1 failed, 3 passed, 2 skipped, 1 error in 0.12s =====` (also without the `=`
/// rule, as `pytest -q` prints it), and `no tests ran in 0.01s`.
fn pytest(line: &str) -> Option<TestCounts> {
    let inner = line.trim_matches('=').trim();
    let (list, time) = inner.rsplit_once(" in ")?;
    let seconds = time.split(' ').next()?.strip_suffix('s')?;
    seconds.parse::<f64>().ok()?;
    if list == "no tests ran" {
        return Some(TestCounts::default());
    }
    items(list, ',')
}

/// `3 passed, 1 failed`, `3 passed, 1 failed, 2 skipped`, `Results: 3 passed, 1 failed`.
fn plain(line: &str) -> Option<TestCounts> {
    let list = match line.split_once(": ") {
        Some((label, rest)) if !label.contains(' ') => rest,
        _ => line,
    };
    let parts: Vec<&str> = list.split(", ").collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let mut counts = TestCounts::default();
    for (part, want) in parts.iter().zip(["passed", "failed", "skipped"]) {
        let (n, word) = item(part)?;
        if word != want {
            return None;
        }
        add(&mut counts, n, word);
    }
    Some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(passed: u64, failed: u64, skipped: u64) -> Option<TestCounts> {
        Some(TestCounts {
            passed,
            failed,
            skipped,
            ..TestCounts::default()
        })
    }

    #[test]
    fn cargo_test_sums_every_binary() {
        let out = "\
   Compiling demo v0.1.0 (/tmp/demo)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.52s
     Running unittests src/lib.rs (target/debug/deps/demo-1a2b)

running 4 tests
test a ... ok
test b ... FAILED
test c ... ignored
test d ... ok

failures:

---- b stdout ----
thread 'b' panicked at src/lib.rs:9:5:
assertion failed: 2 passed, 1 failed

test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/it/main.rs (target/debug/deps/it-3c4d)

running 3 tests
test x ... ok
test y ... ok
test z ... ok

test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s

   Doc-tests demo

running 0 tests

test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";
        // The panic message is not a plain summary: its label is more than one word.
        assert_eq!(parse(out), counts(5, 1, 1));
    }

    #[test]
    fn cargo_test_with_colour() {
        let out = "test result: \u{1b}[32mok\u{1b}[0m. 5 passed; 0 failed; 2 ignored; 0 measured; \
                   3 filtered out; finished in 0.02s\n";
        assert_eq!(parse(out), counts(5, 0, 2));
    }

    #[test]
    fn nextest_summary() {
        let out = "\
    Starting 7 tests across 2 binaries (1 test skipped)
        PASS [   0.004s] demo tests::a
        FAIL [   0.005s] demo tests::b
------------
     Summary [   0.010s] 5 tests run: 4 passed, 1 failed, 2 skipped
        FAIL [   0.005s] demo tests::b
error: test run failed
";
        assert_eq!(parse(out), counts(4, 1, 2));
        let coloured = "\u{1b}[1m     Summary\u{1b}[0m [   1.200s] \u{1b}[1m3\u{1b}[0m tests run: \
                        \u{1b}[1m2\u{1b}[0m \u{1b}[32mpassed\u{1b}[0m (1 slow), \u{1b}[1m1\u{1b}[0m \
                        \u{1b}[35mtimed out\u{1b}[0m, \u{1b}[1m0\u{1b}[0m \u{1b}[33mskipped\u{1b}[0m";
        assert_eq!(parse(coloured), counts(2, 1, 0));
        assert_eq!(
            parse("Summary [0.1s] 1 test run: 1 passed"),
            counts(1, 0, 0)
        );
        assert_eq!(
            parse("Summary [0.1s] 3/5 tests run: 2 passed, 1 failed"),
            counts(2, 1, 0)
        );
    }

    #[test]
    fn pytest_summaries() {
        let out = "\
============================= test session starts ==============================
platform linux -- Python 3.12.3, pytest-8.2.0, pluggy-1.5.0
collected 7 items

tests/test_auth.py ..F.s.E                                               [100%]

=========================== short test summary info ============================
FAILED tests/test_auth.py::test_login - assert 401 == 200
ERROR tests/test_auth.py::test_db - ConnectionError
============= 1 failed, 4 passed, 1 skipped, 1 error in 0.12s ==============
";
        assert_eq!(parse(out), counts(4, 2, 1));
        assert_eq!(
            parse("=== 3 passed, 1 failed, 2 skipped in 0.12s ==="),
            counts(3, 1, 2)
        );
        assert_eq!(parse("3 passed, 2 warnings in 1.01s"), counts(3, 0, 0));
        assert_eq!(
            parse(
                "\u{1b}[32m\u{1b}[1m2 passed\u{1b}[0m, \u{1b}[33m1 xfailed\u{1b}[0m\u{1b}[32m in 0.05s\u{1b}[0m"
            ),
            counts(2, 0, 1)
        );
        assert_eq!(
            parse("======== 10 passed, 3 deselected in 2.31s (0:00:02) ========"),
            counts(10, 0, 0)
        );
        assert_eq!(
            parse("============ no tests ran in 0.01s ============"),
            counts(0, 0, 0)
        );
    }

    #[test]
    fn go_test_counts_result_lines() {
        let out = "\
=== RUN   TestLogin
--- PASS: TestLogin (0.00s)
=== RUN   TestTable
=== RUN   TestTable/empty
    --- PASS: TestTable/empty (0.00s)
=== RUN   TestTable/bad
    auth_test.go:31: got 401, want 200
    --- FAIL: TestTable/bad (0.00s)
--- FAIL: TestTable (0.00s)
=== RUN   TestSlow
    auth_test.go:40: skipping in short mode
--- SKIP: TestSlow (0.00s)
FAIL
FAIL	example.com/auth	0.004s
";
        assert_eq!(parse(out), counts(2, 2, 1));
        assert_eq!(parse("ok  \texample.com/auth\t0.004s\n"), None);
    }

    #[test]
    fn jest_counts_tests_not_suites() {
        let out = "\
 FAIL  src/auth.test.js
  ● login › rejects a bad password

Test Suites: 1 failed, 1 passed, 2 total
Tests:       1 failed, 2 skipped, 3 passed, 6 total
Snapshots:   0 total
Time:        1.234 s
Ran all test suites.
";
        assert_eq!(parse(out), counts(3, 1, 2));
        assert_eq!(
            parse(
                "\u{1b}[1mTests:\u{1b}[22m       \u{1b}[1m\u{1b}[32m4 passed\u{1b}[39m\u{1b}[22m, 4 total"
            ),
            counts(4, 0, 0)
        );
        assert_eq!(
            parse("Tests:       1 todo, 2 passed, 3 total"),
            counts(2, 0, 1)
        );
    }

    #[test]
    fn vitest_counts_tests_not_files() {
        let out = "\
 ✓ src/math.test.ts (2 tests) 3ms
 ❯ src/auth.test.ts (2 tests | 1 failed) 5ms

 Test Files  1 failed | 1 passed (2)
      Tests  3 passed | 1 failed (4)
   Start at  12:00:00
   Duration  312ms (transform 20ms, setup 0ms, collect 30ms, tests 8ms)
";
        assert_eq!(parse(out), counts(3, 1, 0));
        let coloured = " \u{1b}[2m     Tests \u{1b}[22m \u{1b}[1m\u{1b}[32m2 passed\u{1b}[39m\u{1b}[22m\u{1b}[2m | \
                        \u{1b}[22m\u{1b}[33m1 skipped\u{1b}[39m\u{1b}[90m (3)\u{1b}[39m";
        assert_eq!(parse(coloured), counts(2, 0, 1));
    }

    #[test]
    fn plain_lines_with_an_optional_label() {
        assert_eq!(parse("3 passed, 1 failed"), counts(3, 1, 0));
        assert_eq!(parse("3 passed, 1 failed, 2 skipped\n"), counts(3, 1, 2));
        assert_eq!(parse("Results: 10 passed, 0 failed"), counts(10, 0, 0));
        assert_eq!(
            parse("smoke: 1 passed, 1 failed, 0 skipped"),
            counts(1, 1, 0)
        );
        // Two words before the colon, or another order, are not this format.
        assert_eq!(parse("Final results: 3 passed, 1 failed"), None);
        assert_eq!(parse("1 failed, 3 passed"), None);
        assert_eq!(parse("3 passed"), None);
    }

    #[test]
    fn nothing_countable_is_none() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("all good\nbuild finished in 3s\n"), None);
        assert_eq!(parse("Tests: none yet"), None);
        assert_eq!(parse("test result: unknown"), None);
        assert_eq!(parse("we passed, they failed"), None);
        assert_eq!(parse("--- PASSING the torch"), None);
        assert_eq!(parse("logged in 3 users in 0.2s"), None);
    }

    #[test]
    fn different_runners_in_one_check_add_up() {
        let out = "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; \
                   finished in 0.00s\n== 1 passed, 1 failed in 0.10s ==\n";
        assert_eq!(parse(out), counts(3, 1, 0));
    }

    #[test]
    fn ansi_sequences_of_every_kind_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[1;32mok\u{1b}[0m"), "ok");
        assert_eq!(
            strip_ansi("\u{1b}]8;;http://x\u{7}link\u{1b}]8;;\u{1b}\\"),
            "link"
        );
        assert_eq!(strip_ansi("a\u{1b}(Bb"), "ab");
        assert_eq!(strip_ansi("trailing \u{1b}"), "trailing ");
    }
}
