use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::planner::S3_MIN_PART_SIZE;
use crate::recorder::Target;
use crate::sink::{self, SinkCore};

#[derive(Debug, Clone)]
struct Settings {
    location: Option<PathBuf>,
    spool_dir: Option<PathBuf>,
    finish_timeout_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { location: None, spool_dir: None, finish_timeout_ms: sink::DEFAULT_FINISH_TIMEOUT_MS }
    }
}

#[derive(Default)]
pub struct LocalRecordingSink {
    settings: Mutex<Settings>,
    core: SinkCore,
}

impl LocalRecordingSink {
    fn settings(&self) -> Settings {
        self.settings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[glib::object_subclass]
impl ObjectSubclass for LocalRecordingSink {
    const NAME: &'static str = "TesseraLocalRecordingSink";
    type Type = super::LocalRecordingSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for LocalRecordingSink {
    fn constructed(&self) {
        self.parent_constructed();
        // Like filesink: write as fast as data comes, no clock sync.
        self.obj().set_sync(false);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                sink::string_pspec(
                    "location",
                    "Path of the finished recording (written as LOCATION.partial until complete)",
                ),
                sink::spool_dir_pspec(),
                sink::finish_timeout_pspec(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "location" => s.location = sink::opt_string(value).map(PathBuf::from),
            "spool-dir" => s.spool_dir = sink::opt_string(value).map(PathBuf::from),
            "finish-timeout" => s.finish_timeout_ms = value.get().unwrap_or(sink::DEFAULT_FINISH_TIMEOUT_MS),
            _ => {}
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings();
        match pspec.name() {
            "location" => s.location.map(|p| p.display().to_string()).to_value(),
            "spool-dir" => s.spool_dir.map(|p| p.display().to_string()).to_value(),
            "finish-timeout" => s.finish_timeout_ms.to_value(),
            _ => None::<String>.to_value(),
        }
    }
}

impl GstObjectImpl for LocalRecordingSink {}

impl ElementImpl for LocalRecordingSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Tessera local recording sink",
                "Sink/File",
                "Records fragmented MP4 to a file through a local spool and journal (crash-safe)",
                "Tessera developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        crate::sink_pad_templates()
    }
}

impl BaseSinkImpl for LocalRecordingSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings();
        let Some(location) = s.location else {
            return Err(gst::error_msg!(gst::ResourceError::Settings, ["The location property is required"]));
        };
        let spool_dir = s.spool_dir.unwrap_or_else(|| {
            location
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(sink::default_spool_dir, |p| p.join(".tessera-spool"))
        });
        // Local parts are cheap; the S3 size keeps reads of the spool in large chunks.
        self.core.start(self.obj().upcast_ref(), Target::Local { location }, &spool_dir, S3_MIN_PART_SIZE)
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.core.stop(self.obj().upcast_ref());
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.core.render(self.obj().upcast_ref(), buffer)
    }

    fn event(&self, event: gst::Event) -> bool {
        let timeout = Duration::from_millis(self.settings().finish_timeout_ms.into());
        self.core.event(self.obj().upcast_ref(), &event, timeout) && self.parent_event(event)
    }
}
