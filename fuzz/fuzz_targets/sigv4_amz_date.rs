//! Fuzzes `sigv4::AmzDate::parse` and `AmzDate::from_unix_seconds`.
//!
//! The whole input, as lossy UTF-8, is parsed. The first 16 bytes, when
//! present, also give two Unix times (big-endian `u64`) to convert.
//!
//! Checks, besides the absence of panics:
//! - A parsed date keeps its text. It equals `from_unix_seconds` of the
//!   seconds that an independent calendar formula here computes for it.
//! - Every converted time parses back to itself.
//! - Text order is time order, which `iam` relies on to compare an expiry
//!   with the current time.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_stork::sigv4::AmzDate;

fuzz_target!(|data: &[u8]| {
    check_parse(&String::from_utf8_lossy(data));

    if let (Some(first), Some(second)) = (read_u64(data, 0), read_u64(data, 8)) {
        let (early, late) = (first.min(second), first.max(second));
        let early_date = check_from_unix_seconds(early);
        let late_date = check_from_unix_seconds(late);
        assert!(
            early_date.amz_date() <= late_date.amz_date(),
            "{early} gave {early_date} but {late} gave {late_date}"
        );
    }
});

fn check_parse(text: &str) {
    let Some(date) = AmzDate::parse(text) else {
        return;
    };
    assert_eq!(date.amz_date(), text);
    assert_eq!(date.date_stamp(), &text[..8]);
    assert_eq!(date.to_string(), text);

    let field = |range: std::ops::Range<usize>| -> i64 { text[range].parse().unwrap() };
    let days = days_from_civil(field(0..4), field(4..6), field(6..8));
    let seconds = days * 86_400 + field(9..11) * 3_600 + field(11..13) * 60 + field(13..15);
    if let Ok(seconds) = u64::try_from(seconds) {
        assert_eq!(
            AmzDate::from_unix_seconds(seconds),
            date,
            "{seconds} s since 1970"
        );
    }
}

fn check_from_unix_seconds(seconds: u64) -> AmzDate {
    let date = AmzDate::from_unix_seconds(seconds);
    assert_eq!(date.amz_date().len(), 16, "{seconds} gave {date}");
    assert_eq!(
        AmzDate::parse(date.amz_date()).as_ref(),
        Some(&date),
        "{seconds} gave {date}"
    );
    date
}

fn read_u64(data: &[u8], offset: usize) -> Option<u64> {
    let bytes = data.get(offset..offset + 8)?;
    Some(u64::from_be_bytes(bytes.try_into().unwrap()))
}

/// Returns the days from 1970-01-01 to a date of the proleptic Gregorian
/// calendar, negative before 1970. It counts years from March, so the leap
/// day ends a year, in 400-year eras of 146 097 days. On that count,
/// 1970-01-01 is day 719 468.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}
