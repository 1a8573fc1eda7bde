//! `time_intervals:` (and the deprecated `mute_time_intervals:`): named sets of times that routes
//! mute or activate on. Ranges are parsed to numbers here; printing turns them back into the
//! names people write.

use crate::config::{Invalid, Spanned};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeInterval {
    pub name: Spanned<String>,
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalSpec>,
}

/// One period: an instant is inside when every list that is set has an entry containing it.
/// An empty or absent list places no restriction.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<Spanned<TimeRange>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<WeekdayRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_month: Vec<DayOfMonthRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub months: Vec<MonthRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub years: Vec<YearRange>,
    /// UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl TimeInterval {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.name.value.is_empty() {
            return Err(Invalid::on(&self.name, "missing name in time interval"));
        }
        for spec in &self.time_intervals {
            for range in &spec.times {
                if range.value.start_time.value >= range.value.end_time.value {
                    return Err(Invalid::on(
                        &range.value.start_time,
                        "start time cannot be equal or greater than end time",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `start_time` inclusive to `end_time` exclusive, in minutes of the day.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    pub start_time: Spanned<TimeOfDay>,
    pub end_time: Spanned<TimeOfDay>,
}

impl TimeRange {
    pub fn start_minute(&self) -> u16 {
        self.start_time.value.0
    }

    pub fn end_minute(&self) -> u16 {
        self.end_time.value.0
    }
}

/// `HH:MM` from `00:00` to `24:00`, as minutes since midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(pub u16);

impl TimeOfDay {
    pub fn parse(text: &str) -> Result<TimeOfDay, String> {
        let invalid =
            || format!("couldn't parse timestamp {text}, invalid format (expected HH:MM)");
        let (hours, minutes) = text.split_once(':').ok_or_else(invalid)?;
        let two_digits = |part: &str| {
            (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u16>().ok())
                .flatten()
        };
        let (hours, minutes) = two_digits(hours)
            .zip(two_digits(minutes))
            .ok_or_else(invalid)?;
        if minutes > 59 || hours > 24 || (hours == 24 && minutes != 0) {
            return Err(format!("timestamp {text} out of range (00:00 to 24:00)"));
        }
        Ok(TimeOfDay(hours * 60 + minutes))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(ScalarText)?;
        TimeOfDay::parse(&text).map_err(de::Error::custom)
    }
}

/// A scalar as text: YAML writes `days_of_month: [1, 15]` and `years: [2024]` unquoted.
struct ScalarText;

impl Visitor<'_> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
        Ok(value.to_string())
    }
}

/// `x` or `x:y`, each member read by `member`; lower case first, as Alertmanager does.
fn parse_range(
    text: &str,
    member: impl Fn(&str) -> Result<i32, String>,
) -> Result<(i32, i32), String> {
    let lowered = text.to_lowercase();
    match lowered.split_once(':') {
        Some((_, end)) if end.contains(':') => {
            Err(format!("couldn't parse range {text}, invalid format"))
        }
        Some((start, end)) => Ok((member(start)?, member(end)?)),
        None => {
            let value = member(&lowered)?;
            Ok((value, value))
        }
    }
}

fn integer(text: &str) -> Result<i32, String> {
    text.parse::<i32>()
        .map_err(|_| format!("{text:?} is not a valid number"))
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn index_of(names: &[&str], text: &str) -> Option<i32> {
    names
        .iter()
        .position(|name| *name == text)
        .and_then(|index| i32::try_from(index).ok())
}

/// Declares an inclusive range type whose Deserialize parses with `$parse` and whose Serialize
/// prints with `$print`.
macro_rules! inclusive_range {
    ($(#[$meta:meta])* $name:ident, $parse:path, $print:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            pub start: i32,
            pub end: i32,
        }

        impl $name {
            pub fn parse(text: &str) -> Result<$name, String> {
                let (start, end) = $parse(text)?;
                Ok($name { start, end })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                $print(f, self.start)?;
                if self.start != self.end {
                    f.write_str(":")?;
                    $print(f, self.end)?;
                }
                Ok(())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = deserializer.deserialize_any(ScalarText)?;
                $name::parse(&text).map_err(de::Error::custom)
            }
        }
    };
}

fn print_number(f: &mut fmt::Formatter<'_>, value: i32) -> fmt::Result {
    write!(f, "{value}")
}

fn print_weekday(f: &mut fmt::Formatter<'_>, value: i32) -> fmt::Result {
    match usize::try_from(value)
        .ok()
        .and_then(|index| WEEKDAYS.get(index))
    {
        Some(name) => f.write_str(name),
        None => write!(f, "{value}"),
    }
}

fn print_month(f: &mut fmt::Formatter<'_>, value: i32) -> fmt::Result {
    match usize::try_from(value - 1)
        .ok()
        .and_then(|index| MONTHS.get(index))
    {
        Some(name) => f.write_str(name),
        None => write!(f, "{value}"),
    }
}

fn parse_weekdays(text: &str) -> Result<(i32, i32), String> {
    let (start, end) = parse_range(text, |member| {
        index_of(&WEEKDAYS, member).ok_or_else(|| format!("{member} is not a valid weekday"))
    })?;
    if start > end {
        return Err(format!(
            "start day cannot be after end day in {text:?} (weeks run sunday to saturday)"
        ));
    }
    Ok((start, end))
}

fn parse_days_of_month(text: &str) -> Result<(i32, i32), String> {
    let (start, end) = parse_range(text, integer)?;
    for day in [start, end] {
        if day == 0 || !(-31..=31).contains(&day) {
            return Err(format!(
                "{day} is not a valid day of the month: out of range"
            ));
        }
    }
    // Negative days count from the end of the month; a negative start with a positive end would
    // be a valid range in long months only.
    if start < 0 && end > 0 {
        return Err("end day must be negative if start day is negative".to_string());
    }
    // Compare as in the shortest month (28 days) to catch ranges that are always empty.
    let in_short_month = |day: i32| if day < 0 { 28 + day } else { day };
    if in_short_month(start) > in_short_month(end) {
        return Err(format!("end day {end} is always before start day {start}"));
    }
    Ok((start, end))
}

fn parse_months(text: &str) -> Result<(i32, i32), String> {
    let (start, end) = parse_range(text, |member| match index_of(&MONTHS, member) {
        Some(index) => Ok(index + 1),
        None => member
            .parse::<i32>()
            .ok()
            .filter(|month| (1..=12).contains(month))
            .ok_or_else(|| format!("{member} is not a valid month")),
    })?;
    if start > end {
        return Err(format!(
            "end month {} is before start month {}",
            text_month(end),
            text_month(start)
        ));
    }
    Ok((start, end))
}

fn text_month(month: i32) -> &'static str {
    usize::try_from(month - 1)
        .ok()
        .and_then(|index| MONTHS.get(index))
        .copied()
        .unwrap_or("?")
}

fn parse_years(text: &str) -> Result<(i32, i32), String> {
    let (start, end) = parse_range(text, |member| {
        integer(member).and_then(|year| {
            if year < 0 {
                Err(format!("{year} is not a valid year"))
            } else {
                Ok(year)
            }
        })
    })?;
    if start > end {
        return Err(format!("end year {end} is before start year {start}"));
    }
    Ok((start, end))
}

inclusive_range!(
    /// Days of the week, 0 = Sunday to 6 = Saturday; written `monday` or `monday:friday`.
    WeekdayRange,
    parse_weekdays,
    print_weekday
);
inclusive_range!(
    /// Days of the month, 1 to 31, or -31 to -1 counting back from the month's last day.
    DayOfMonthRange,
    parse_days_of_month,
    print_number
);
inclusive_range!(
    /// Months, 1 = January to 12; written by name (any case) or number.
    MonthRange,
    parse_months,
    print_month
);
inclusive_range!(
    /// Calendar years.
    YearRange,
    parse_years,
    print_number
);

/// The time zone a period is read in: an IANA name, `UTC` or `Local` (this machine's zone).
#[derive(Debug, Clone)]
pub struct Location {
    pub name: String,
    pub zone: jiff::tz::TimeZone,
}

impl Location {
    pub fn parse(name: &str) -> Result<Location, String> {
        let zone = match name {
            "" | "UTC" => jiff::tz::TimeZone::UTC,
            "Local" => jiff::tz::TimeZone::system(),
            other => jiff::tz::TimeZone::get(other)
                .map_err(|_| format!("unknown time zone {other:?}"))?,
        };
        Ok(Location {
            name: name.to_string(),
            zone,
        })
    }
}

impl Serialize for Location {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Location::parse(&name).map_err(de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day() {
        assert_eq!(TimeOfDay::parse("09:30"), Ok(TimeOfDay(570)));
        assert_eq!(TimeOfDay::parse("24:00"), Ok(TimeOfDay(1440)));
        assert!(TimeOfDay::parse("24:01").is_err());
        assert!(TimeOfDay::parse("9:30").is_err());
        assert!(TimeOfDay::parse("09:60").is_err());
        assert_eq!(TimeOfDay(570).to_string(), "09:30");
    }

    #[test]
    fn weekday_ranges() {
        let range = WeekdayRange::parse("Monday:FRIDAY").unwrap();
        assert_eq!((range.start, range.end), (1, 5));
        assert_eq!(range.to_string(), "monday:friday");
        assert_eq!(WeekdayRange::parse("sunday").unwrap().to_string(), "sunday");
        assert!(WeekdayRange::parse("friday:monday").is_err());
        assert_eq!(
            WeekdayRange::parse("funday").unwrap_err(),
            "funday is not a valid weekday"
        );
        assert!(WeekdayRange::parse("monday:tuesday:friday").is_err());
    }

    #[test]
    fn days_of_month_ranges() {
        assert_eq!(DayOfMonthRange::parse("1:5").unwrap().to_string(), "1:5");
        assert_eq!(
            DayOfMonthRange::parse("-3:-1").unwrap().to_string(),
            "-3:-1"
        );
        assert_eq!(DayOfMonthRange::parse("7").unwrap().to_string(), "7");
        assert!(DayOfMonthRange::parse("0").is_err());
        assert!(DayOfMonthRange::parse("32").is_err());
        assert!(DayOfMonthRange::parse("-1:5").is_err());
        assert!(DayOfMonthRange::parse("10:-25").is_err());
        assert!(DayOfMonthRange::parse("5:1").is_err());
        // Valid: the 20th to the 3rd-last day, non-empty in every month.
        assert!(DayOfMonthRange::parse("20:-3").is_ok());
    }

    #[test]
    fn month_and_year_ranges() {
        let months = MonthRange::parse("may:August").unwrap();
        assert_eq!((months.start, months.end), (5, 8));
        assert_eq!(months.to_string(), "may:august");
        assert_eq!(
            MonthRange::parse("1:3").unwrap().to_string(),
            "january:march"
        );
        assert!(MonthRange::parse("13").is_err());
        assert_eq!(
            MonthRange::parse("december:january").unwrap_err(),
            "end month january is before start month december"
        );
        assert_eq!(
            YearRange::parse("2020:2022").unwrap().to_string(),
            "2020:2022"
        );
        assert!(YearRange::parse("2022:2020").is_err());
    }

    #[test]
    fn locations() {
        assert!(Location::parse("Australia/Sydney").is_ok());
        assert!(Location::parse("UTC").is_ok());
        assert!(Location::parse("Local").is_ok());
        assert_eq!(
            Location::parse("Mars/Olympus_Mons").unwrap_err(),
            "unknown time zone \"Mars/Olympus_Mons\""
        );
    }
}
