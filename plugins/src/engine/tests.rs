//! The uploader against a scripted store: tail objects, pacing, retries, parts first.

use std::collections::VecDeque;

use super::*;
use crate::journal::Destination;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Create,
    Part { n: u32, offset: u64, len: u64 },
    Tail { offset: u64, len: u64 },
    TailFailed { offset: u64, len: u64 },
    DeleteTails(Option<u64>),
    Complete { parts: usize },
}

/// Records the calls; tail objects fail as `tail_failures` says, in order.
struct Mock {
    dest: Destination,
    calls: Arc<Mutex<Vec<Call>>>,
    tail_failures: Arc<Mutex<VecDeque<ErrorKind>>>,
}

impl Storage for Mock {
    fn destination(&self) -> &Destination {
        &self.dest
    }
    fn create_upload(&mut self) -> Result<String, StorageError> {
        lock(&self.calls).push(Call::Create);
        Ok("u".into())
    }
    fn list_parts(&mut self, _: &str) -> Result<Vec<RemotePart>, StorageError> {
        Ok(Vec::new())
    }
    fn upload_part(&mut self, _: &str, n: u32, part: &SpoolRange) -> Result<String, StorageError> {
        lock(&self.calls).push(Call::Part { n, offset: part.offset, len: part.len });
        Ok(format!("e{n}"))
    }
    fn complete(&mut self, _: &str, parts: &[PartRecord]) -> Result<(), StorageError> {
        lock(&self.calls).push(Call::Complete { parts: parts.len() });
        Ok(())
    }
    fn abort(&mut self, _: &str) -> Result<(), StorageError> {
        Ok(())
    }
    fn put_tail(&mut self, offset: u64, range: &SpoolRange) -> Result<(), StorageError> {
        assert_eq!(offset, range.offset);
        if let Some(kind) = lock(&self.tail_failures).pop_front() {
            lock(&self.calls).push(Call::TailFailed { offset, len: range.len });
            return Err(StorageError::new(kind, "injected"));
        }
        lock(&self.calls).push(Call::Tail { offset, len: range.len });
        Ok(())
    }
    fn delete_tails(&mut self, below: Option<u64>) -> Result<(), StorageError> {
        lock(&self.calls).push(Call::DeleteTails(below));
        Ok(())
    }
}

/// A recording of 300-byte fragments after a 100-byte header, parts of at least 2000
/// bytes: tail objects follow the fragments (paced: fragments that come close together
/// share one), a transient failure is tried again, a permanent one is skipped without a
/// gap, parts come first and clear the tail objects below them, and the end deletes them
/// all.
#[test]
fn tail_objects_follow_the_fragments_and_give_way_to_parts() {
    let dir = tempfile::tempdir().unwrap();
    let journal = JournalWriter::create(&dir.path().join("r.journal")).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let tail_failures = Arc::new(Mutex::new(VecDeque::new()));
    let feed = Arc::new(Feed::default());
    let uploader = Uploader {
        storage: Box::new(Mock {
            dest: Destination::Local { location: dir.path().join("out.mp4") },
            calls: calls.clone(),
            tail_failures: tail_failures.clone(),
        }),
        journal: Arc::new(Mutex::new(journal)),
        spool_path: dir.path().join("r.mp4"),
        min_part_size: 2000,
        upload_id: None,
        parts: Vec::new(),
        feed: feed.clone(),
        deadline: None,
        tail_objects: true,
        tail_interval: Duration::from_millis(300),
    };
    let thread = std::thread::spawn(move || uploader.run(|_| {}));
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock(&calls).len() < n {
            assert!(Instant::now() < deadline, "calls: {:?}", lock(&calls));
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let wait_calls = |n: usize| {
        wait_for(n);
        // Nothing more comes by itself (also once the pacing interval is over).
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(lock(&calls).len(), n, "{:?}", lock(&calls));
    };
    let fragment = |k: u64| 100 + 300 * k;

    // The header alone: no tail object.
    feed.publish([], 100);
    wait_calls(1);
    // The first fragment: header and fragment in one.
    feed.publish([fragment(0)], fragment(1));
    wait_calls(2);
    // A transient failure: tried again after a backoff.
    lock(&tail_failures).push_back(ErrorKind::Transient);
    feed.publish([fragment(1)], fragment(2));
    wait_calls(4);
    // A permanent failure: skipped until the next fragment, which starts at the same offset.
    lock(&tail_failures).push_back(ErrorKind::Permanent);
    feed.publish([fragment(2)], fragment(3));
    wait_calls(5);
    feed.publish([fragment(3)], fragment(4));
    wait_calls(6);
    // Two fragments soon after a tail object (as mp4mux writes audio and video): one
    // tail object for both, once the interval is over.
    feed.publish([fragment(4)], fragment(5));
    wait_for(7);
    feed.publish([fragment(5)], fragment(6));
    feed.publish([fragment(6)], fragment(7));
    wait_calls(8);
    // The part first, then the tail from its end.
    feed.publish([fragment(7)], fragment(8));
    wait_calls(11);
    feed.finish(fragment(8));
    let outcome = thread.join().unwrap();
    assert_eq!(outcome, Outcome::Complete { bytes: fragment(8), parts: 2 });
    let t = |offset, end| Call::Tail { offset, len: end - offset };
    assert_eq!(
        *lock(&calls),
        vec![
            Call::Create,
            t(0, fragment(1)),
            Call::TailFailed { offset: fragment(1), len: 300 },
            t(fragment(1), fragment(2)),
            Call::TailFailed { offset: fragment(2), len: 300 },
            t(fragment(2), fragment(4)),
            t(fragment(4), fragment(5)),
            t(fragment(5), fragment(7)),
            Call::Part { n: 1, offset: 0, len: fragment(7) },
            Call::DeleteTails(Some(fragment(7))),
            t(fragment(7), fragment(8)),
            Call::Part { n: 2, offset: fragment(7), len: 300 },
            Call::DeleteTails(Some(fragment(8))),
            Call::Complete { parts: 2 },
            Call::DeleteTails(None),
        ]
    );
}
