//! Durations as operators write them: `250ms`, `30s`, `5m`, `1h`, `2d` or
//! plain seconds (`300`), one parser for the proxy and the operator.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What the CRD schema accepts for a duration field: whole numbers with an
/// optional `s`, `m` or `h`. A subset of what [`parse_duration`] reads.
pub const DURATION_PATTERN: &str = r"^[0-9]+(s|m|h)?$";

/// Longer durations are refused as a typo rather than honoured.
const MAX_SECONDS: f64 = 100.0 * 365.0 * 86400.0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a duration such as 30s, 5m, 1h or plain seconds")]
    NotANumber,
    #[error("unknown duration unit {0:?}; use ms, s, m, h or d")]
    UnknownUnit(String),
    #[error("duration is out of range")]
    OutOfRange,
}

/// Parses `30s`, `5m`, `1h`, `2d`, `250ms`, or a plain number of seconds (`300`).
pub fn parse_duration(raw: &str) -> Result<Duration, DurationError> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| DurationError::NotANumber)?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => return Err(DurationError::UnknownUnit(other.to_string())),
    };
    if !seconds.is_finite() || seconds > MAX_SECONDS {
        return Err(DurationError::OutOfRange);
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A setting's duration: parsed with [`parse_duration`], shown in the largest
/// unit that divides it exactly (`30s`, `5m`, `1h`, `250ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SettingDuration(pub Duration);

impl SettingDuration {
    pub const fn from_secs(seconds: u64) -> Self {
        Self(Duration::from_secs(seconds))
    }

    pub const fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for SettingDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, DurationError> {
        parse_duration(text).map(Self)
    }
}

impl fmt::Display for SettingDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if !millis.is_multiple_of(1000) {
            return write!(f, "{millis}ms");
        }
        let seconds = millis / 1000;
        let (value, unit) = [(86400, "d"), (3600, "h"), (60, "m")]
            .into_iter()
            .find(|(size, _)| seconds != 0 && seconds.is_multiple_of(*size))
            .map_or((seconds, "s"), |(size, unit)| (seconds / size, unit));
        write!(f, "{value}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_plain_seconds() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_duration("").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("1e400").is_err());
    }

    #[test]
    fn shown_as_written_and_read_back() {
        for (duration, text) in [
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(2 * 86400), "2d"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(90), "90s"),
            (Duration::ZERO, "0s"),
        ] {
            let shown = SettingDuration(duration).to_string();
            assert_eq!(shown, text);
            assert_eq!(
                shown.parse::<SettingDuration>(),
                Ok(SettingDuration(duration))
            );
        }
    }

    /// Whatever the CRD lets through, the proxy can read, and nothing else
    /// of the sample is let through.
    #[test]
    fn the_crd_pattern_is_a_subset_of_the_parser() {
        let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
        let samples = [
            "0", "30", "30s", "5m", "1h", "250ms", "2d", "1.5s", "", "s", "-5s", "5 m", "1e3",
            "5M", "10x",
        ];
        let mut matched = 0;
        for text in samples {
            if pattern.is_match(text) {
                matched += 1;
                assert!(
                    parse_duration(text).is_ok(),
                    "{text:?} passes the CRD, not the proxy"
                );
            }
        }
        assert_eq!(matched, 5, "0, 30, 30s, 5m and 1h match the pattern");
    }
}
