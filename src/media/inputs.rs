//! SFU track id → the program input its packets go to, read for every packet by the SFU's
//! hand-off threads without a shared lock.
//!
//! Changes (a track joins or leaves a program, a program stops) are rare and go into the
//! table under its lock, bumping its generation. Each reading thread keeps its own copy and
//! takes the lock only when the generation moved. The copy holds programs weakly: a stopped
//! program is not kept alive by a thread that has not read since.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tessera_compositor::{Program, TrackId};

use crate::locks::lock;

/// Distinguishes tables in a thread's copies (a test process has many hubs).
static NEXT_TABLE: AtomicU64 = AtomicU64::new(1);

type Copy = HashMap<String, (Weak<Program>, TrackId)>;

thread_local! {
    /// This thread's copy of one table: (table id, generation, entries).
    static COPY: RefCell<Option<(u64, u64, Copy)>> = const { RefCell::new(None) };
}

/// The inputs of every room's program. Lock order: a leaf (taken under the hub's rooms lock).
pub(super) struct InputTable {
    id: u64,
    map: Mutex<HashMap<String, (Arc<Program>, TrackId)>>,
    generation: AtomicU64,
}

impl Default for InputTable {
    fn default() -> Self {
        InputTable {
            id: NEXT_TABLE.fetch_add(1, Ordering::Relaxed),
            map: Mutex::default(),
            generation: AtomicU64::new(0),
        }
    }
}

impl InputTable {
    /// Applies a change under the lock; readers refresh their copies.
    fn change(&self, f: impl FnOnce(&mut HashMap<String, (Arc<Program>, TrackId)>)) {
        let mut map = lock(&self.map);
        f(&mut map);
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(super) fn insert(&self, track_id: String, program: Arc<Program>, input: TrackId) {
        self.change(|m| {
            m.insert(track_id, (program, input));
        });
    }

    pub(super) fn remove(&self, track_id: &str) {
        self.change(|m| {
            m.remove(track_id);
        });
    }

    /// Forgets every input of `program`.
    pub(super) fn remove_program(&self, program: &Arc<Program>) {
        self.change(|m| m.retain(|_, (p, _)| !Arc::ptr_eq(p, program)));
    }

    /// The program and input of `track_id`, from this thread's copy.
    pub(super) fn get(&self, track_id: &str) -> Option<(Arc<Program>, TrackId)> {
        let generation = self.generation.load(Ordering::Acquire);
        COPY.with(|c| {
            let mut c = c.borrow_mut();
            let fresh = matches!(&*c, Some((id, g, _)) if *id == self.id && *g == generation);
            if !fresh {
                let map = lock(&self.map);
                // Read under the lock: every change made so far is in this copy.
                let generation = self.generation.load(Ordering::Acquire);
                let copy = map.iter().map(|(k, (p, i))| (k.clone(), (Arc::downgrade(p), *i))).collect();
                *c = Some((self.id, generation, copy));
            }
            let (_, _, copy) = c.as_ref()?;
            let (program, input) = copy.get(track_id)?;
            Some((program.upgrade()?, *input))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_compositor::ProgramConfig;

    #[test]
    fn a_change_reaches_a_thread_that_read_before_and_a_stopped_program_is_not_kept() {
        let table = InputTable::default();
        let layout = tessera_compositor::layout::Layout::builtin("grid").expect("grid");
        let program = Arc::new(Program::new(ProgramConfig::default(), layout).expect("program"));
        assert!(table.get("TR_1").is_none());
        table.insert("TR_1".into(), Arc::clone(&program), TrackId(1));
        let got = table.get("TR_1").map(|(p, i)| (Arc::ptr_eq(&p, &program), i));
        assert_eq!(got, Some((true, TrackId(1))));
        // Another table on the same thread has its own entries.
        let other = InputTable::default();
        assert!(other.get("TR_1").is_none());
        assert!(table.get("TR_1").is_some(), "the thread's copy follows the table asked");
        table.remove_program(&program);
        assert!(table.get("TR_1").is_none());
        table.insert("TR_2".into(), Arc::clone(&program), TrackId(2));
        assert!(table.get("TR_2").is_some());
        // A copy does not keep a program alive: dropped elsewhere, it is gone here too.
        let weak = Arc::downgrade(&program);
        table.remove("TR_2");
        program.stop().expect("stop");
        drop(program);
        assert!(weak.upgrade().is_none());
    }
}
