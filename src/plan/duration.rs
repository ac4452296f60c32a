//! Durations as plans and the command line write them: `500ms`, `90s`, `5m`, `1h30m`.
//!
//! One small grammar, shared by the plan (`timeout`, `grace`) and `--timeout`, so a value
//! that works in one place works in the other. Units come in descending order, each at most
//! once, and the total must fit in a `u64` of milliseconds: anything else is refused with
//! the reason in words, never rounded or guessed.

use std::time::Duration;

/// The units, largest first, with their size in milliseconds.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses `500ms`, `90s`, `5m`, `1h30m`. A zero duration is refused: as a timeout it would
/// end every task at once. Returns what is wrong in words.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = parse_span(text)?;
    if d.is_zero() {
        return Err(format!(
            "`{}` is zero; a duration must be above zero",
            text.trim()
        ));
    }
    Ok(d)
}

/// Like [`parse_duration`] but allows zero (`grace: 0s` means "kill at once").
pub(crate) fn parse_span(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty; write a duration such as `90s`, `5m` or `1h30m`".into());
    }
    if text.starts_with('-') {
        return Err(format!(
            "`{text}` is negative; a duration must be above zero"
        ));
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Index into UNITS of the last unit seen: the next one must be smaller.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration; write e.g. `500ms`, `90s`, `5m` or `1h30m`"
            ));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(|b| !b.is_ascii_digit()).count();
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!(
                "`{text}` has no unit; write e.g. `{number}s` or `{number}ms`"
            ));
        }
        if unit.starts_with('.') || unit.starts_with(',') {
            return Err(format!(
                "`{text}` has a fraction; use smaller units instead, e.g. `1m30s`"
            ));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!(
                "`{text}` has an unknown unit `{unit}`; use `h`, `m`, `s` or `ms`"
            ));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(format!(
                "`{text}` has its units out of order; write them largest first, each once, \
                 as in `1h30m15s`"
            ));
        }
        last_unit = Some(index);
        let too_long = || format!("`{text}` is too long");
        let value: u64 = number.parse().map_err(|_| too_long())?;
        let ms = value.checked_mul(UNITS[index].1).ok_or_else(too_long)?;
        total = total.checked_add(ms).ok_or_else(too_long)?;
        rest = after;
    }
    Ok(Duration::from_millis(total))
}

/// The shortest plan-style spelling of `d` (whole milliseconds; below that is dropped).
/// [`parse_span`] reads it back to the same value.
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (name, size) in UNITS {
        if ms >= size {
            out.push_str(&format!("{}{name}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reads_every_unit_and_combinations() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("90s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("1h30m15s250ms"), Ok(ms(5_415_250)));
        assert_eq!(parse_duration("2m500ms"), Ok(ms(120_500)));
        assert_eq!(parse_duration(" 10s "), Ok(ms(10_000)));
        assert_eq!(parse_duration("90m"), Ok(ms(5_400_000)));
    }

    #[test]
    fn refuses_what_is_not_a_duration_with_the_reason() {
        let err = |t: &str| parse_duration(t).unwrap_err();
        assert_eq!(err("0s"), "`0s` is zero; a duration must be above zero");
        assert_eq!(err("0h0m"), "`0h0m` is zero; a duration must be above zero");
        assert_eq!(
            err("-5s"),
            "`-5s` is negative; a duration must be above zero"
        );
        assert_eq!(
            err(""),
            "is empty; write a duration such as `90s`, `5m` or `1h30m`"
        );
        assert_eq!(err("90"), "`90` has no unit; write e.g. `90s` or `90ms`");
        assert_eq!(
            err("5x"),
            "`5x` has an unknown unit `x`; use `h`, `m`, `s` or `ms`"
        );
        assert_eq!(
            err("5 m"),
            "`5 m` has an unknown unit ` m`; use `h`, `m`, `s` or `ms`"
        );
        assert_eq!(
            err("1.5h"),
            "`1.5h` has a fraction; use smaller units instead, e.g. `1m30s`"
        );
        assert!(err("30m1h").contains("out of order"));
        assert!(err("1m1m").contains("out of order"));
        assert_eq!(
            err("99999999999999999999s"),
            "`99999999999999999999s` is too long"
        );
        assert_eq!(
            err("18446744073709551615h"),
            "`18446744073709551615h` is too long"
        );
        assert!(err("m").contains("is not a duration"));
        assert!(err("five minutes").contains("is not a duration"));
    }

    #[test]
    fn span_allows_zero() {
        assert_eq!(parse_span("0s"), Ok(Duration::ZERO));
        assert!(parse_span("-1s").is_err());
    }

    #[test]
    fn formats_shortest_and_reads_back() {
        assert_eq!(format_duration(ms(0)), "0s");
        assert_eq!(format_duration(ms(500)), "500ms");
        assert_eq!(format_duration(ms(90_000)), "1m30s");
        assert_eq!(format_duration(ms(5_400_000)), "1h30m");
        assert_eq!(format_duration(ms(3_600_001)), "1h1ms");
        for n in [1, 999, 1000, 61_001, 86_400_000, 7 * 86_400_000 + 1] {
            assert_eq!(parse_span(&format_duration(ms(n))), Ok(ms(n)));
        }
    }
}
