//! Deliberate bugs, for the simulator to prove that it finds them (`simulations/`).
//!
//! Each switch turns one safety mechanism of the cores off. They exist only to be switched on by
//! the simulator's bug-catching tests: without the `fault-injection` cargo feature every
//! accessor is a constant `false`, so the checks they guard compile to what they were. All
//! switches are off by default even with the feature.

/// Which deliberate bugs are on. All off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every node sends at its flush: no ownership wait, no claim check (→ duplicates).
    pub skip_ownership_wait: bool,
    /// Silences merge by arrival order instead of last-writer-wins (→ divergence, resurrection).
    pub merge_silences_by_arrival: bool,
}

impl Faults {
    #[cfg(feature = "fault-injection")]
    #[inline]
    pub fn skip_ownership_wait(&self) -> bool {
        self.skip_ownership_wait
    }

    #[cfg(not(feature = "fault-injection"))]
    #[inline]
    pub const fn skip_ownership_wait(&self) -> bool {
        false
    }

    #[cfg(feature = "fault-injection")]
    #[inline]
    pub fn merge_silences_by_arrival(&self) -> bool {
        self.merge_silences_by_arrival
    }

    #[cfg(not(feature = "fault-injection"))]
    #[inline]
    pub const fn merge_silences_by_arrival(&self) -> bool {
        false
    }
}
