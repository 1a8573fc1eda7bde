//! The event trace: every significant step of a run as one line. Its running hash proves
//! determinism (same seed ⇒ same hash); the lines themselves are kept only when asked for.

use super::Ms;

/// A running FNV-1a hash of the trace lines, and optionally the lines.
#[derive(Debug, Clone)]
pub struct Trace {
    hash: u64,
    lines: Option<Vec<(Ms, String)>>,
    count: u64,
}

impl Trace {
    pub fn new(keep_lines: bool) -> Trace {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            lines: keep_lines.then(Vec::new),
            count: 0,
        }
    }

    /// Whether lines are kept (callers may skip building expensive text otherwise).
    pub fn keeps_lines(&self) -> bool {
        self.lines.is_some()
    }

    pub fn record(&mut self, at: Ms, line: String) {
        for byte in at.to_le_bytes().iter().chain(line.as_bytes()) {
            self.hash ^= u64::from(*byte);
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.hash ^= 0xff;
        self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        self.count += 1;
        if let Some(lines) = &mut self.lines {
            lines.push((at, line));
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn into_lines(self) -> Vec<(Ms, String)> {
        self.lines.unwrap_or_default()
    }
}

/// `mm:ss.mmm` of virtual time, for readable traces.
pub fn clock(at: Ms) -> String {
    format!(
        "{:03}:{:02}.{:03}",
        at / 60_000,
        (at / 1000) % 60,
        at % 1000
    )
}
