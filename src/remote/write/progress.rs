//! Which WAL position a queue has really shipped: the start of the oldest record that still
//! has samples in flight, or, when nothing is in flight, the end of the last record read.
//! That position is what is persisted, so a restart re-reads (and re-sends) at most the
//! samples that were not acknowledged; nothing acknowledged-or-not is skipped. Sans-IO.
#![deny(clippy::disallowed_methods)]

use super::wal_tail::Position;
use std::collections::VecDeque;

/// Records with samples in flight, oldest first, numbered consecutively.
#[derive(Debug)]
pub struct Progress {
    /// The number of `records[0]`.
    first_record: u64,
    /// Per record: where it starts and how many of its samples are not done yet.
    records: VecDeque<(Position, u64)>,
    /// Just past the last record the reader finished with.
    read: Position,
}

impl Progress {
    /// Nothing in flight; reading resumes at `read`.
    pub fn new(read: Position) -> Progress {
        Progress {
            first_record: 0,
            records: VecDeque::new(),
            read,
        }
    }

    /// Registers a record starting at `start` whose `samples` are about to be queued; returns
    /// the number its samples carry. `end` is where the next record starts.
    pub fn begin_record(&mut self, start: Position, end: Position, samples: u64) -> u64 {
        let number = self.first_record + self.records.len() as u64;
        if samples > 0 {
            self.records.push_back((start, samples));
        }
        if self.records.is_empty() {
            self.first_record = number + 1;
        }
        self.read = end;
        number
    }

    /// Marks `count` samples of record `number` done (sent, or dropped for good).
    pub fn finish(&mut self, number: u64, count: u64) {
        let Some(index) = number.checked_sub(self.first_record) else {
            return;
        };
        if let Some(entry) = self.records.get_mut(index as usize) {
            entry.1 = entry.1.saturating_sub(count);
        }
        while let Some((_, 0)) = self.records.front() {
            self.records.pop_front();
            self.first_record += 1;
        }
    }

    /// Where a restart should resume.
    pub fn committed(&self) -> Position {
        match self.records.front() {
            Some((start, _)) => *start,
            None => self.read,
        }
    }

    /// Records with samples still in flight.
    pub fn records_in_flight(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Position {
        Position { segment: 3, offset }
    }

    #[test]
    fn the_oldest_unfinished_record_holds_the_position() {
        let mut progress = Progress::new(at(0));
        let a = progress.begin_record(at(0), at(10), 2);
        let b = progress.begin_record(at(10), at(20), 1);
        let _empty = progress.begin_record(at(20), at(30), 0);
        assert_eq!(progress.committed(), at(0));
        progress.finish(b, 1);
        assert_eq!(progress.committed(), at(0), "a is still in flight");
        progress.finish(a, 1);
        assert_eq!(progress.committed(), at(0));
        progress.finish(a, 1);
        assert_eq!(progress.committed(), at(30));
        assert_eq!(progress.records_in_flight(), 0);
        let c = progress.begin_record(at(30), at(40), 1);
        assert_eq!(progress.committed(), at(30));
        progress.finish(c, 1);
        assert_eq!(progress.committed(), at(40));
        // Unknown and stale numbers are ignored.
        progress.finish(a, 5);
        progress.finish(c + 100, 5);
        assert_eq!(progress.committed(), at(40));
    }

    #[test]
    fn numbers_stay_consecutive_across_empty_records() {
        let mut progress = Progress::new(at(0));
        let _ = progress.begin_record(at(0), at(1), 0);
        let _ = progress.begin_record(at(1), at(2), 0);
        let a = progress.begin_record(at(2), at(3), 1);
        let b = progress.begin_record(at(3), at(4), 1);
        progress.finish(a, 1);
        assert_eq!(progress.committed(), at(3));
        progress.finish(b, 1);
        assert_eq!(progress.committed(), at(4));
    }
}
