//! A node's simulated disk: the silences log, appended and fsynced before a silence is
//! acknowledged (as `node/alerting.rs` does), and the notification log, appended at delivery
//! time and fsynced a few milliseconds later by group commit. A crash loses what was written but
//! not yet fsynced. The deliberate bug `forget_nflog_fsync` reports fsyncs as done without
//! making anything durable.

/// Records written to the notification log but not yet durable, each with the delivery that
/// waits for it (if any).
#[derive(Debug, Clone, Default)]
pub struct Disk {
    pub silences: Vec<Vec<u8>>,
    pub nflog: Vec<Vec<u8>>,
    /// Written, not yet fsynced: (record, delivery waiting for durability).
    pub nflog_pending: Vec<(Vec<u8>, Option<u64>)>,
    /// Reported durable by a (buggy) fsync but still only in the page cache.
    pub nflog_page_cache: Vec<Vec<u8>>,
    pub fsync_scheduled: bool,
    pub lost_on_crash: u64,
}

impl Disk {
    /// Appends and fsyncs silence records at once (the shell's synchronous `persist_silences`).
    pub fn persist_silences(&mut self, records: impl IntoIterator<Item = Vec<u8>>) {
        self.silences.extend(records);
    }

    /// Queues an nflog record for the group commit.
    pub fn write_nflog(&mut self, record: Vec<u8>, waiting: Option<u64>) {
        self.nflog_pending.push((record, waiting));
    }

    /// The group commit's fsync: what was pending becomes durable (or, with the bug, is only
    /// reported so). Returns the deliveries that were waiting.
    pub fn fsync_nflog(&mut self, forget: bool) -> Vec<u64> {
        self.fsync_scheduled = false;
        let mut waiting = Vec::new();
        for (record, delivery) in self.nflog_pending.drain(..) {
            if forget {
                self.nflog_page_cache.push(record);
            } else {
                self.nflog.push(record);
            }
            waiting.extend(delivery);
        }
        waiting
    }

    /// Power loss: whatever is not durable is gone.
    pub fn crash(&mut self) {
        self.lost_on_crash += (self.nflog_pending.len() + self.nflog_page_cache.len()) as u64;
        self.nflog_pending.clear();
        self.nflog_page_cache.clear();
        self.fsync_scheduled = false;
    }
}
