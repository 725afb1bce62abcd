//! [`WallClock`]: the date a proxy stamps on responses that lack one.
//!
//! RFC 9110 §6.6.1: a recipient with a clock that forwards a response without `Date`
//! must add one, and a server with a clock must send one (the proxy's own error
//! responses). The core reads no clock: a runtime sets the time here, about once a
//! second, and the sessions of every [`Proxy`](crate::Proxy) sharing the clock read
//! it. Until it is set the proxy has no clock, and adds no `Date`.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The wall-clock second as an HTTP date, shared by the proxies (configurations) of
/// one process; none until a runtime sets it. Formatted when set (once a second), not
/// for each response.
///
/// Read at every response without `Date`, on every worker thread, so a read writes
/// nothing shared (a lock would move its cache line from core to core at each
/// response): the date sits in atomics behind a sequence number, which the one writer
/// makes odd while it writes. A reader that finds it odd, or changed under it, tries
/// again, and after a few tries waits for the writer's lock instead of spinning.
#[derive(Clone, Debug, Default)]
pub struct WallClock(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    /// 0: never set; odd: being written; even: `words` hold a whole date.
    sequence: AtomicU64,
    /// The date's 29 bytes, little-endian in four words.
    words: [AtomicU64; 4],
    /// Held while writing: one writer at a time, and a place for a reader to wait.
    writer: Mutex<()>,
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7): always 29 bytes.
pub type HttpDate = [u8; 29];

/// Lock-free reads tried before a reader waits for the writer's lock.
const OPTIMISTIC_READS: usize = 4;

impl WallClock {
    /// Sets the time: whole seconds since the Unix epoch.
    pub fn set(&self, unix_seconds: u64) {
        let mut bytes = [0; 32];
        bytes[..29].copy_from_slice(&http_date(unix_seconds));
        let shared = &*self.0;
        let _writing = shared.writer.lock().unwrap_or_else(|e| e.into_inner());
        let sequence = shared.sequence.load(Ordering::Relaxed);
        shared.sequence.store(sequence | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (word, chunk) in shared.words.iter().zip(bytes.chunks_exact(8)) {
            let chunk = <[u8; 8]>::try_from(chunk).unwrap_or_default();
            word.store(u64::from_le_bytes(chunk), Ordering::Relaxed);
        }
        shared
            .sequence
            .store((sequence | 1).wrapping_add(1), Ordering::Release);
    }

    /// The time as an HTTP date, if a runtime has set it.
    pub fn date(&self) -> Option<HttpDate> {
        let shared = &*self.0;
        for _ in 0..OPTIMISTIC_READS {
            match shared.read() {
                Read::Unset => return None,
                Read::Date(date) => return Some(date),
                Read::Torn => {}
            }
        }
        let _writer_done = shared.writer.lock().unwrap_or_else(|e| e.into_inner());
        match shared.read() {
            Read::Date(date) => Some(date),
            Read::Unset | Read::Torn => None,
        }
    }
}

/// One lock-free read of the date.
enum Read {
    Unset,
    Date(HttpDate),
    /// Written meanwhile: try again.
    Torn,
}

impl Shared {
    fn read(&self) -> Read {
        let before = self.sequence.load(Ordering::Acquire);
        if before == 0 {
            return Read::Unset;
        }
        if before & 1 == 1 {
            return Read::Torn;
        }
        let mut bytes = [0; 32];
        for (word, chunk) in self.words.iter().zip(bytes.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        fence(Ordering::Acquire);
        if self.sequence.load(Ordering::Relaxed) != before {
            return Read::Torn;
        }
        let mut date = [0; 29];
        date.copy_from_slice(&bytes[..29]);
        Read::Date(date)
    }
}

/// `unix_seconds` as an IMF-fixdate. Days become a civil date with the
/// era-of-400-years method (Howard Hinnant's `civil_from_days`).
pub fn http_date(unix_seconds: u64) -> HttpDate {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_seconds / 86_400;
    let second_of_day = unix_seconds % 86_400;
    // Shifted to begin on 0000-03-01, so that a leap day ends its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    let year = year.min(9999);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], second_of_day / 3_600);
    two_digits(&mut out[20..22], second_of_day / 60 % 60);
    two_digits(&mut out[23..25], second_of_day % 60);
    out
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdates() {
        for (seconds, date) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"), // RFC 9110's example
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_795_651_199, "Wed, 25 Nov 2026 23:59:59 GMT"),
            (4_102_444_800, "Fri, 01 Jan 2100 00:00:00 GMT"),
        ] {
            assert_eq!(std::str::from_utf8(&http_date(seconds)).unwrap(), date);
        }
    }

    #[test]
    fn every_day_of_four_centuries_is_the_day_after_the_one_before() {
        // Month lengths and leap years (2000 is one, 2100 is not), checked day by day.
        let days_in = |year: u64, month: usize| match month {
            2 if year.is_multiple_of(4)
                && (!year.is_multiple_of(100) || year.is_multiple_of(400)) =>
            {
                29
            }
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let (mut year, mut month, mut day) = (1970u64, 1usize, 1u64);
        for days in 0..(400 * 366) {
            let date = http_date(days * 86_400);
            let expect = format!(
                "{:02} {} {}",
                day,
                [
                    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                    "Dec"
                ][month - 1],
                year
            );
            assert_eq!(&date[5..16], expect.as_bytes(), "day {days}");
            day += 1;
            if day > days_in(year, month) {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
    }

    /// Readers on other threads, while the time is set again and again, see one
    /// whole date or the other, never parts of both.
    #[test]
    fn a_date_read_while_it_is_set_is_never_torn() {
        let (first, second) = (0, 784_111_777);
        let dates = [http_date(first), http_date(second)];
        let clock = WallClock::default();
        clock.set(first);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (clock, done) = (clock.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !done.load(Ordering::Relaxed) || reads == 0 {
                        let date = clock.date().expect("set before the readers start");
                        assert!(
                            dates.contains(&date),
                            "torn: {:?}",
                            String::from_utf8_lossy(&date)
                        );
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for i in 0..200_000u64 {
            clock.set(if i % 2 == 0 { second } else { first });
        }
        done.store(true, Ordering::Relaxed);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
    }

    #[test]
    fn an_unset_clock_gives_no_date() {
        let clock = WallClock::default();
        assert_eq!(clock.date(), None);
        clock.clone().set(784_111_777);
        assert_eq!(clock.date(), Some(*b"Sun, 06 Nov 1994 08:49:37 GMT"));
    }
}
