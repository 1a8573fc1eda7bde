//! Go's time formatting: layouts written as the reference time `Mon Jan 2 15:04:05 MST 2006`
//! (what `date` and `.StartsAt.Format` take), `time.Time.String` and `time.Duration.String`.

use jiff::ZonedDateTime;
use jiff::civil::Weekday;

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Go's `time.Time.String`: `2006-01-02 15:04:05.999999999 -0700 MST`.
pub(crate) fn go_time_string(time: &ZonedDateTime) -> String {
    format_layout(time, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// Go's `time.Duration.String`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(crate) fn go_duration_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    let fraction = |value: u64, unit: u64| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if magnitude < 1_000 {
        return format!("{sign}{magnitude}ns");
    }
    if magnitude < 1_000_000 {
        return format!("{sign}{}µs", fraction(magnitude, 1_000));
    }
    if magnitude < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(magnitude, 1_000_000));
    }
    let hours = magnitude / 3_600_000_000_000;
    let minutes = magnitude / 60_000_000_000 % 60;
    let seconds = fraction(magnitude % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

fn weekday_name(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

fn starts_with_lower(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// One element of a layout, recognised the way Go's `nextStdChunk` does.
enum Chunk {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekday,
    Weekday,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm {
        upper: bool,
    },
    Zone,
    /// Numeric zone offset; `iso` prints `Z` for UTC.
    Offset {
        iso: bool,
        colon: bool,
        seconds: bool,
        minutes: bool,
    },
    /// Fractional seconds with this many digits; `trim` drops trailing zeros (the `9` form).
    Fraction {
        digits: usize,
        trim: bool,
    },
}

/// Finds the next chunk: (literal prefix length, chunk, chunk length).
fn next_chunk(layout: &str) -> Option<(usize, Chunk, usize)> {
    let bytes = layout.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        let rest = &layout[i..];
        let found = match c {
            b'J' if rest.starts_with("January") => Some((Chunk::LongMonth, 7)),
            b'J' if rest.starts_with("Jan") && !starts_with_lower(&rest[3..]) => {
                Some((Chunk::Month, 3))
            }
            b'M' if rest.starts_with("Monday") => Some((Chunk::LongWeekday, 6)),
            b'M' if rest.starts_with("Mon") && !starts_with_lower(&rest[3..]) => {
                Some((Chunk::Weekday, 3))
            }
            b'M' if rest.starts_with("MST") => Some((Chunk::Zone, 3)),
            b'0' if rest.starts_with("002") => Some((Chunk::ZeroYearDay, 3)),
            b'0' => match bytes.get(i + 1) {
                Some(b'1') => Some((Chunk::ZeroMonth, 2)),
                Some(b'2') => Some((Chunk::ZeroDay, 2)),
                Some(b'3') => Some((Chunk::ZeroHour12, 2)),
                Some(b'4') => Some((Chunk::ZeroMinute, 2)),
                Some(b'5') => Some((Chunk::ZeroSecond, 2)),
                Some(b'6') => Some((Chunk::Year, 2)),
                _ => None,
            },
            b'1' if rest.starts_with("15") => Some((Chunk::Hour, 2)),
            b'1' => Some((Chunk::NumMonth, 1)),
            b'2' if rest.starts_with("2006") => Some((Chunk::LongYear, 4)),
            b'2' => Some((Chunk::Day, 1)),
            b'_' if rest.starts_with("_2") => {
                if rest.starts_with("_2006") {
                    // "_2006" is a literal underscore and a year, as in Go.
                    return Some((i + 1, Chunk::LongYear, 4));
                }
                Some((Chunk::UnderDay, 2))
            }
            b'_' if rest.starts_with("__2") => Some((Chunk::UnderYearDay, 3)),
            b'3' => Some((Chunk::Hour12, 1)),
            b'4' => Some((Chunk::Minute, 1)),
            b'5' => Some((Chunk::Second, 1)),
            b'P' if rest.starts_with("PM") => Some((Chunk::Pm { upper: true }, 2)),
            b'p' if rest.starts_with("pm") => Some((Chunk::Pm { upper: false }, 2)),
            b'-' | b'Z' => {
                let iso = c == b'Z';
                let tail = &rest[1..];
                if tail.starts_with("07:00:00") {
                    Some((
                        Chunk::Offset {
                            iso,
                            colon: true,
                            seconds: true,
                            minutes: true,
                        },
                        9,
                    ))
                } else if tail.starts_with("070000") {
                    Some((
                        Chunk::Offset {
                            iso,
                            colon: false,
                            seconds: true,
                            minutes: true,
                        },
                        7,
                    ))
                } else if tail.starts_with("07:00") {
                    Some((
                        Chunk::Offset {
                            iso,
                            colon: true,
                            seconds: false,
                            minutes: true,
                        },
                        6,
                    ))
                } else if tail.starts_with("0700") {
                    Some((
                        Chunk::Offset {
                            iso,
                            colon: false,
                            seconds: false,
                            minutes: true,
                        },
                        5,
                    ))
                } else if tail.starts_with("07") {
                    Some((
                        Chunk::Offset {
                            iso,
                            colon: false,
                            seconds: false,
                            minutes: false,
                        },
                        3,
                    ))
                } else {
                    None
                }
            }
            b'.' | b',' if matches!(bytes.get(i + 1), Some(b'0' | b'9')) => {
                let digit = bytes[i + 1];
                let run = bytes[i + 1..].iter().take_while(|b| **b == digit).count();
                // Only a run not followed by another digit is a fraction.
                if bytes.get(i + 1 + run).is_some_and(u8::is_ascii_digit) {
                    None
                } else {
                    Some((
                        Chunk::Fraction {
                            digits: run,
                            trim: digit == b'9',
                        },
                        run + 1,
                    ))
                }
            }
            _ => None,
        };
        if let Some((chunk, len)) = found {
            return Some((i, chunk, len));
        }
    }
    None
}

/// Go's `time.Time.Format`.
pub(crate) fn format_layout(time: &ZonedDateTime, layout: &str) -> String {
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    let hour = i32::from(time.hour());
    let hour12 = match hour % 12 {
        0 => 12,
        h => h,
    };
    let offset_seconds = time.offset().seconds();
    while let Some((prefix, chunk, len)) = next_chunk(rest) {
        out.push_str(&rest[..prefix]);
        // The fraction chunk includes its separator.
        let separator = &rest[prefix..prefix + 1];
        rest = &rest[prefix + len..];
        let month_index = (time.month() - 1).clamp(0, 11) as usize;
        match chunk {
            Chunk::LongMonth => out.push_str(LONG_MONTHS[month_index]),
            Chunk::Month => out.push_str(&LONG_MONTHS[month_index][..3]),
            Chunk::NumMonth => out.push_str(&time.month().to_string()),
            Chunk::ZeroMonth => out.push_str(&format!("{:02}", time.month())),
            Chunk::LongWeekday => out.push_str(weekday_name(time.weekday())),
            Chunk::Weekday => out.push_str(&weekday_name(time.weekday())[..3]),
            Chunk::Day => out.push_str(&time.day().to_string()),
            Chunk::UnderDay => out.push_str(&format!("{:>2}", time.day())),
            Chunk::ZeroDay => out.push_str(&format!("{:02}", time.day())),
            Chunk::UnderYearDay => out.push_str(&format!("{:>3}", time.day_of_year())),
            Chunk::ZeroYearDay => out.push_str(&format!("{:03}", time.day_of_year())),
            Chunk::Hour => out.push_str(&format!("{hour:02}")),
            Chunk::Hour12 => out.push_str(&hour12.to_string()),
            Chunk::ZeroHour12 => out.push_str(&format!("{hour12:02}")),
            Chunk::Minute => out.push_str(&time.minute().to_string()),
            Chunk::ZeroMinute => out.push_str(&format!("{:02}", time.minute())),
            Chunk::Second => out.push_str(&time.second().to_string()),
            Chunk::ZeroSecond => out.push_str(&format!("{:02}", time.second())),
            Chunk::LongYear => out.push_str(&format!("{:04}", time.year())),
            Chunk::Year => out.push_str(&format!("{:02}", i32::from(time.year()).rem_euclid(100))),
            Chunk::Pm { upper } => {
                let text = if hour >= 12 { "PM" } else { "AM" };
                out.push_str(&if upper {
                    text.to_string()
                } else {
                    text.to_ascii_lowercase()
                });
            }
            Chunk::Zone => {
                let info = time.time_zone().to_offset_info(time.timestamp());
                let abbreviation = info.abbreviation();
                if abbreviation.is_empty() {
                    out.push_str(&format_offset(offset_seconds, false, false, false, true));
                } else {
                    out.push_str(abbreviation);
                }
            }
            Chunk::Offset {
                iso,
                colon,
                seconds,
                minutes,
            } => {
                out.push_str(&format_offset(offset_seconds, iso, colon, seconds, minutes));
            }
            Chunk::Fraction { digits, trim } => {
                let nanos = format!("{:09}", time.subsec_nanosecond());
                let mut fraction = nanos[..digits.min(9)].to_string();
                if digits > 9 {
                    fraction.push_str(&"0".repeat(digits - 9));
                }
                if trim {
                    let trimmed = fraction.trim_end_matches('0');
                    if !trimmed.is_empty() {
                        out.push_str(separator);
                        out.push_str(trimmed);
                    }
                } else {
                    out.push_str(separator);
                    out.push_str(&fraction);
                }
            }
        }
    }
    out.push_str(rest);
    out
}

fn format_offset(
    offset_seconds: i32,
    iso: bool,
    colon: bool,
    with_seconds: bool,
    with_minutes: bool,
) -> String {
    if iso && offset_seconds == 0 {
        return "Z".into();
    }
    let sign = if offset_seconds < 0 { '-' } else { '+' };
    let magnitude = offset_seconds.unsigned_abs();
    let (hours, minutes, seconds) = (magnitude / 3600, magnitude / 60 % 60, magnitude % 60);
    let separator = if colon { ":" } else { "" };
    let mut text = format!("{sign}{hours:02}");
    if with_minutes {
        text.push_str(&format!("{separator}{minutes:02}"));
    }
    if with_seconds {
        text.push_str(&format!("{separator}{seconds:02}"));
    }
    text
}
