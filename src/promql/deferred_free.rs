//! Frees what a finished query selected on a background thread.
//!
//! A query over 100k series ends by freeing every series' label set and samples: about a
//! million small allocations, a quarter of the query's time in a profile of `sum by (job)
//! (rate(...[5m]))`. None of it affects the answer, so the evaluator hands those structures
//! to one freeing thread and the answer goes out without waiting (Prometheus's Go runtime
//! does the same work in its concurrent garbage collector). The queue is bounded: when the
//! thread is behind, the query frees its own data, so memory stays bounded by a few
//! queries' worth.

use std::any::Any;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Finished queries' data waiting to be freed, at most.
const QUEUED: usize = 2;

type Garbage = Box<dyn Any + Send>;

/// Drops `value` on the freeing thread, or here when that thread is busy or could not start.
pub(crate) fn free_later<T: Send + 'static>(value: T) {
    static SENDER: OnceLock<Option<SyncSender<Garbage>>> = OnceLock::new();
    let sender = SENDER.get_or_init(|| {
        let (sender, receiver) = sync_channel::<Garbage>(QUEUED);
        std::thread::Builder::new()
            .name("promql-free".into())
            .spawn(move || receiver.into_iter().for_each(drop))
            .ok()
            .map(|_| sender)
    });
    let garbage: Garbage = Box::new(value);
    if let Some(sender) = sender {
        match sender.try_send(garbage) {
            Ok(()) => {}
            Err(TrySendError::Full(garbage) | TrySendError::Disconnected(garbage)) => drop(garbage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn values_are_dropped_whether_queued_or_not() {
        let tracker = Arc::new(());
        for _ in 0..50 {
            free_later(vec![Arc::clone(&tracker); 100]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&tracker) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(Arc::strong_count(&tracker), 1);
    }
}
