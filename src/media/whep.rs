//! Where WHEP viewers' media comes from (`POST /whep/{room}`): the room's program, published
//! into the room on demand (`publication.rs`) and counted per viewer, so the program stops
//! when its last viewer leaves and nothing else uses it. The SFU answers the viewers and
//! forwards the program's packets to them, encoded once for all.

use tessera_compositor::ProgramConfig;
use tessera_compositor::layout::Layout;
use tessera_sfu::{Sfu, WhepSource};

use super::ProgramHub;
use super::publication::ProgramUser;

/// The program a viewer gets when none runs yet: the default canvas (1280x720, 30 fps) in a
/// grid, as a recording started without settings.
pub struct ProgramWhepSource {
    hub: ProgramHub,
    /// The SFU the program is published into. (It holds this source: the two live as long
    /// as the server.)
    sfu: Sfu,
}

impl ProgramWhepSource {
    pub fn new(hub: ProgramHub, sfu: Sfu) -> Self {
        ProgramWhepSource { hub, sfu }
    }
}

impl WhepSource for ProgramWhepSource {
    fn acquire(&self, room: &str) -> Result<String, String> {
        let grid = Layout::builtin("grid").ok_or("the grid layout is missing")?;
        self.hub
            .publish_program(&self.sfu, room, ProgramConfig::default(), grid, ProgramUser::Viewer)
            .map_err(|e| e.to_string())
    }

    fn release(&self, room: &str) {
        // Finishing the program's output waits for its end of stream: off the caller's
        // thread, which may be one of the runtime's workers.
        let (hub, room) = (self.hub.clone(), room.to_owned());
        let finish = move || hub.unpublish_program(&room, ProgramUser::Viewer);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(finish);
            }
            Err(_) => finish(),
        }
    }
}
