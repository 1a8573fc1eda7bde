//! Whether an instant lies in a named time interval, for routes' `mute_time_intervals` and
//! `active_time_intervals`, with Alertmanager's semantics.
//!
//! One difference, on purpose: Alertmanager 0.25 measures a month by dividing its elapsed hours
//! by 24, so in a zone with daylight saving time the month that springs forward counts one day
//! short and `-1` means the day before the last (fixed upstream in alertmanager#5447). Tocsin
//! counts calendar days.

use crate::config::alertmanager::{AlertmanagerConfig, TimeInterval, TimeIntervalSpec};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::HashMap;

/// Whether `now` lies in any period of the interval. An interval without periods contains no
/// instant.
pub fn contains(interval: &TimeInterval, now: Timestamp) -> bool {
    interval
        .time_intervals
        .iter()
        .any(|period| period_contains(period, now))
}

/// Whether `now` lies in one period: read in the period's location (UTC when absent), every
/// list that is given must have a range containing it.
pub fn period_contains(period: &TimeIntervalSpec, now: Timestamp) -> bool {
    let civil = match &period.location {
        Some(location) => location.zone.to_datetime(now),
        None => TimeZone::UTC.to_datetime(now),
    };

    if !period.times.is_empty() {
        let minute_of_day = u16::try_from(i32::from(civil.hour()) * 60 + i32::from(civil.minute()))
            .unwrap_or(u16::MAX);
        // Start inclusive, end exclusive: `00:00`–`24:00` is the whole day.
        if !period.times.iter().any(|range| {
            range.value.start_minute() <= minute_of_day && minute_of_day < range.value.end_minute()
        }) {
            return false;
        }
    }

    if !period.days_of_month.is_empty() {
        let days_in_month = i32::from(civil.date().days_in_month());
        let day = i32::from(civil.day());
        if !period
            .days_of_month
            .iter()
            .any(|range| day_range_contains(range.start, range.end, days_in_month, day))
        {
            return false;
        }
    }

    if !period.months.is_empty() {
        let month = i32::from(civil.month());
        if !period
            .months
            .iter()
            .any(|range| range.start <= month && month <= range.end)
        {
            return false;
        }
    }

    if !period.weekdays.is_empty() {
        let weekday = i32::from(civil.weekday().to_sunday_zero_offset());
        if !period
            .weekdays
            .iter()
            .any(|range| range.start <= weekday && weekday <= range.end)
        {
            return false;
        }
    }

    if !period.years.is_empty() {
        let year = i32::from(civil.year());
        if !period
            .years
            .iter()
            .any(|range| range.start <= year && year <= range.end)
        {
            return false;
        }
    }

    true
}

/// A `days_of_month` range in a month of `days_in_month` days, as Alertmanager reads it:
/// negative days count back from the month's end (`-1` is the last day); a range starting after
/// the month's end contains nothing, and one running past it stops at the last day.
fn day_range_contains(start: i32, end: i32, days_in_month: i32, day: i32) -> bool {
    let from_end = |value: i32| {
        if value < 0 {
            days_in_month + value + 1
        } else {
            value
        }
    };
    let (start, end) = (from_end(start), from_end(end));
    if start > days_in_month {
        return false;
    }
    let start = start.clamp(-days_in_month, days_in_month);
    let end = end.clamp(-days_in_month, days_in_month);
    start <= day && day <= end
}

/// The configuration's named time intervals (`time_intervals` and the deprecated
/// `mute_time_intervals`), looked up by name.
#[derive(Debug, Clone, Default)]
pub struct TimeIntervals {
    by_name: HashMap<String, TimeInterval>,
}

impl TimeIntervals {
    pub fn new(intervals: impl IntoIterator<Item = TimeInterval>) -> TimeIntervals {
        TimeIntervals {
            by_name: intervals
                .into_iter()
                .map(|interval| (interval.name.value.clone(), interval))
                .collect(),
        }
    }

    pub fn from_config(config: &AlertmanagerConfig) -> TimeIntervals {
        TimeIntervals::new(
            config
                .time_intervals
                .iter()
                .chain(&config.mute_time_intervals)
                .map(|interval| interval.value.clone()),
        )
    }

    pub fn get(&self, name: &str) -> Option<&TimeInterval> {
        self.by_name.get(name)
    }

    /// Whether `now` lies in any of the named intervals. A name the configuration does not
    /// define contains nothing; loading the configuration refuses such names already.
    pub fn any_contains<S: AsRef<str>>(&self, names: &[S], now: Timestamp) -> bool {
        names.iter().any(|name| {
            self.by_name
                .get(name.as_ref())
                .is_some_and(|interval| contains(interval, now))
        })
    }

    /// Whether a route with these `mute_time_intervals` mutes its notifications at `now`.
    pub fn is_muted<S: AsRef<str>>(&self, mute_time_intervals: &[S], now: Timestamp) -> bool {
        self.any_contains(mute_time_intervals, now)
    }

    /// Whether a route with these `active_time_intervals` may notify at `now`: always when it
    /// names none, otherwise only inside one of them.
    pub fn is_active<S: AsRef<str>>(&self, active_time_intervals: &[S], now: Timestamp) -> bool {
        active_time_intervals.is_empty() || self.any_contains(active_time_intervals, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alertmanager::parse_alertmanager_file;

    fn intervals(yaml: &str) -> TimeIntervals {
        let text = format!(
            "route:\n  receiver: default\nreceivers:\n  - name: default\ntime_intervals:\n{yaml}"
        );
        TimeIntervals::from_config(&parse_alertmanager_file(&text, "test.yml").unwrap())
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// Checks `name` against each `(instant, expected)`.
    fn check(intervals: &TimeIntervals, name: &str, cases: &[(&str, bool)]) {
        let interval = intervals.get(name).unwrap();
        for (instant, expected) in cases {
            assert_eq!(
                contains(interval, at(instant)),
                *expected,
                "{name} at {instant}"
            );
        }
    }

    #[test]
    fn times_include_the_start_and_exclude_the_end() {
        let intervals = intervals(
            "
  - name: office
    time_intervals:
      - times: [{start_time: '09:00', end_time: '17:00'}]
  - name: all-day
    time_intervals:
      - times: [{start_time: '00:00', end_time: '24:00'}]
  - name: split
    time_intervals:
      - times:
          - {start_time: '00:00', end_time: '01:00'}
          - {start_time: '23:00', end_time: '24:00'}
",
        );
        check(
            &intervals,
            "office",
            &[
                ("2024-05-06T08:59:59Z", false),
                ("2024-05-06T09:00:00Z", true),
                ("2024-05-06T16:59:59Z", true),
                ("2024-05-06T17:00:00Z", false),
            ],
        );
        check(
            &intervals,
            "all-day",
            &[
                ("2024-05-06T00:00:00Z", true),
                ("2024-05-06T23:59:59Z", true),
            ],
        );
        check(
            &intervals,
            "split",
            &[
                ("2024-05-06T00:30:00Z", true),
                ("2024-05-06T12:00:00Z", false),
                ("2024-05-06T23:30:00Z", true),
            ],
        );
    }

    #[test]
    fn weekdays_months_and_years() {
        let intervals = intervals(
            "
  - name: weekdays
    time_intervals:
      - weekdays: ['monday:friday']
  - name: weekends
    time_intervals:
      - weekdays: [saturday, sunday]
  - name: summer
    time_intervals:
      - months: ['june:august']
  - name: december-2024
    time_intervals:
      - months: [12]
        years: ['2024']
  - name: old
    time_intervals:
      - years: ['2019:2021']
",
        );
        // 2024-01-06 is a Saturday, 2024-01-07 a Sunday, 2024-01-08 a Monday.
        check(
            &intervals,
            "weekdays",
            &[
                ("2024-01-06T12:00:00Z", false),
                ("2024-01-07T12:00:00Z", false),
                ("2024-01-08T12:00:00Z", true),
                ("2024-01-12T23:59:00Z", true),
            ],
        );
        check(
            &intervals,
            "weekends",
            &[
                ("2024-01-06T00:00:00Z", true),
                ("2024-01-07T23:59:59Z", true),
                ("2024-01-08T00:00:00Z", false),
            ],
        );
        check(
            &intervals,
            "summer",
            &[
                ("2024-05-31T23:59:59Z", false),
                ("2024-06-01T00:00:00Z", true),
                ("2024-08-31T23:59:59Z", true),
                ("2024-09-01T00:00:00Z", false),
            ],
        );
        check(
            &intervals,
            "december-2024",
            &[
                ("2024-12-15T00:00:00Z", true),
                ("2023-12-15T00:00:00Z", false),
                ("2024-11-15T00:00:00Z", false),
            ],
        );
        check(
            &intervals,
            "old",
            &[
                ("2018-12-31T23:59:59Z", false),
                ("2019-01-01T00:00:00Z", true),
                ("2021-12-31T23:59:59Z", true),
                ("2022-01-01T00:00:00Z", false),
            ],
        );
    }

    #[test]
    fn negative_days_count_from_the_end_of_the_month() {
        let intervals = intervals(
            "
  - name: last-day
    time_intervals:
      - days_of_month: ['-1']
  - name: last-week
    time_intervals:
      - days_of_month: ['-7:-1']
  - name: late
    time_intervals:
      - days_of_month: ['30:31']
  - name: from-25th
    time_intervals:
      - days_of_month: ['25:31']
  - name: first-three-of-long-months
    time_intervals:
      - days_of_month: ['-31:-29']
  - name: middle
    time_intervals:
      - days_of_month: ['10:-10']
",
        );
        check(
            &intervals,
            "last-day",
            &[
                // A leap year's February ends on the 29th.
                ("2024-02-28T12:00:00Z", false),
                ("2024-02-29T12:00:00Z", true),
                ("2023-02-28T12:00:00Z", true),
                ("2024-04-30T12:00:00Z", true),
                ("2024-05-30T12:00:00Z", false),
                ("2024-05-31T12:00:00Z", true),
            ],
        );
        check(
            &intervals,
            "last-week",
            &[
                ("2024-02-22T12:00:00Z", false),
                ("2024-02-23T12:00:00Z", true),
                ("2023-02-21T12:00:00Z", false),
                ("2023-02-22T12:00:00Z", true),
            ],
        );
        // A range starting past the month's end is empty; one running past it stops there.
        check(
            &intervals,
            "late",
            &[
                ("2024-02-29T12:00:00Z", false),
                ("2024-04-30T12:00:00Z", true),
                ("2024-05-31T12:00:00Z", true),
            ],
        );
        check(
            &intervals,
            "from-25th",
            &[
                ("2023-02-24T12:00:00Z", false),
                ("2023-02-28T12:00:00Z", true),
            ],
        );
        check(
            &intervals,
            "first-three-of-long-months",
            &[
                ("2024-01-01T12:00:00Z", true),
                ("2024-01-03T12:00:00Z", true),
                ("2024-01-04T12:00:00Z", false),
                // April: -31 is day 0, -29 day 2.
                ("2024-04-01T12:00:00Z", true),
                ("2024-04-02T12:00:00Z", true),
                ("2024-04-03T12:00:00Z", false),
                ("2023-02-01T12:00:00Z", false),
            ],
        );
        check(
            &intervals,
            "middle",
            &[
                ("2024-02-09T12:00:00Z", false),
                ("2024-02-10T12:00:00Z", true),
                ("2024-02-20T12:00:00Z", true),
                ("2024-02-21T12:00:00Z", false),
                ("2024-03-22T12:00:00Z", true),
                ("2024-03-23T12:00:00Z", false),
            ],
        );
    }

    #[test]
    fn locations_read_the_instant_in_their_zone() {
        let intervals = intervals(
            "
  - name: new-york-office
    time_intervals:
      - times: [{start_time: '09:00', end_time: '17:00'}]
        weekdays: ['monday:friday']
        location: America/New_York
  - name: new-york-last-day
    time_intervals:
      - days_of_month: ['-1']
        location: America/New_York
  - name: sydney-new-year
    time_intervals:
      - months: [january]
        days_of_month: ['1']
        location: Australia/Sydney
  - name: berlin-small-hours
    time_intervals:
      - times: [{start_time: '02:00', end_time: '03:00'}]
        location: Europe/Berlin
",
        );
        check(
            &intervals,
            "new-york-office",
            &[
                // Before the switch to daylight saving time New York is UTC-5, after it UTC-4.
                ("2021-03-12T13:59:00Z", false),
                ("2021-03-12T14:00:00Z", true),
                ("2021-03-15T13:00:00Z", true),
                ("2021-03-15T12:59:00Z", false),
                ("2021-03-15T20:59:00Z", true),
                ("2021-03-15T21:00:00Z", false),
                // A Saturday.
                ("2021-03-13T14:00:00Z", false),
            ],
        );
        // March springs forward, so it has 743 hours; its last day is still the 31st.
        check(
            &intervals,
            "new-york-last-day",
            &[
                ("2021-03-30T16:00:00Z", false),
                ("2021-03-31T16:00:00Z", true),
                ("2021-04-01T03:59:00Z", true),
                ("2021-04-01T04:00:00Z", false),
            ],
        );
        check(
            &intervals,
            "sydney-new-year",
            &[
                ("2023-12-31T12:59:59Z", false),
                ("2023-12-31T13:00:00Z", true),
                ("2024-01-01T12:59:59Z", true),
                ("2024-01-01T13:00:00Z", false),
            ],
        );
        check(
            &intervals,
            "berlin-small-hours",
            &[
                // 02:00–03:00 does not exist on the day Berlin springs forward...
                ("2024-03-31T00:59:59Z", false),
                ("2024-03-31T01:00:00Z", false),
                // ...and happens twice on the day it falls back.
                ("2024-10-27T00:00:00Z", true),
                ("2024-10-27T00:59:59Z", true),
                ("2024-10-27T01:00:00Z", true),
                ("2024-10-27T01:59:59Z", true),
                ("2024-10-27T02:00:00Z", false),
            ],
        );
    }

    #[test]
    fn any_period_matches_and_all_fields_of_a_period_must() {
        let intervals = intervals(
            "
  - name: weekend-or-nights
    time_intervals:
      - weekdays: [saturday, sunday]
      - times: [{start_time: '00:00', end_time: '06:00'}]
  - name: monday-mornings-in-may
    time_intervals:
      - weekdays: [monday]
        times: [{start_time: '06:00', end_time: '12:00'}]
        months: [may]
  - name: never
",
        );
        check(
            &intervals,
            "weekend-or-nights",
            &[
                ("2024-01-06T12:00:00Z", true),
                ("2024-01-08T03:00:00Z", true),
                ("2024-01-08T12:00:00Z", false),
            ],
        );
        check(
            &intervals,
            "monday-mornings-in-may",
            &[
                ("2024-05-06T07:00:00Z", true),
                ("2024-05-07T07:00:00Z", false),
                ("2024-05-06T13:00:00Z", false),
                ("2024-06-03T07:00:00Z", false),
            ],
        );
        check(&intervals, "never", &[("2024-05-06T07:00:00Z", false)]);
    }

    #[test]
    fn muted_and_active_by_name() {
        let intervals = intervals(
            "
  - name: nights
    time_intervals:
      - times: [{start_time: '00:00', end_time: '06:00'}]
  - name: weekends
    time_intervals:
      - weekdays: [saturday, sunday]
",
        );
        let monday_night = at("2024-01-08T03:00:00Z");
        let monday_noon = at("2024-01-08T12:00:00Z");
        let saturday_noon = at("2024-01-06T12:00:00Z");
        let none: [&str; 0] = [];
        let both = ["nights", "weekends"];

        assert!(!intervals.is_muted(&none, monday_night));
        assert!(intervals.is_muted(&both, monday_night));
        assert!(intervals.is_muted(&both, saturday_noon));
        assert!(!intervals.is_muted(&both, monday_noon));

        assert!(intervals.is_active(&none, monday_noon));
        assert!(intervals.is_active(&["weekends"], saturday_noon));
        assert!(!intervals.is_active(&["weekends"], monday_noon));
        assert!(!intervals.is_active(&["undefined"], monday_noon));

        let owned = vec!["nights".to_string()];
        assert!(intervals.is_muted(&owned, monday_night));
    }
}
