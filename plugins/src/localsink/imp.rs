use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::lock;
use crate::planner::S3_MIN_PART_SIZE;
use crate::recorder::Target;
use crate::recordingsink::{Plan, RecordingSinkImpl};
use crate::sink;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("tesseralocalsink", gst::DebugColorFlags::empty(), Some("Tessera local recording sink"))
});

#[derive(Debug, Clone, Default)]
struct Settings {
    location: Option<PathBuf>,
}

#[derive(Default)]
pub struct LocalRecordingSink {
    settings: Mutex<Settings>,
}

impl LocalRecordingSink {
    fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }
}

#[glib::object_subclass]
impl ObjectSubclass for LocalRecordingSink {
    const NAME: &'static str = "TesseraLocalRecordingSink";
    type Type = super::LocalRecordingSink;
    type ParentType = crate::recordingsink::RecordingSink;
}

impl ObjectImpl for LocalRecordingSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![sink::string_pspec(
                "location",
                "Path of the finished recording (written as LOCATION.partial until complete)",
            )]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        if pspec.name() == "location" {
            s.location = sink::opt_string(value).map(PathBuf::from);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "location" => self.settings().location.map(|p| p.display().to_string()).to_value(),
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
}

impl BaseSinkImpl for LocalRecordingSink {}

impl RecordingSinkImpl for LocalRecordingSink {
    fn plan(&self) -> Result<Plan, gst::ErrorMessage> {
        let Some(location) = self.settings().location else {
            return Err(gst::error_msg!(gst::ResourceError::Settings, ["The location property is required"]));
        };
        gst::debug!(CAT, imp = self, "recording to {}", location.display());
        let default_spool_dir = location
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(sink::default_spool_dir, |p| p.join(".tessera-spool"));
        // Local parts are cheap; the S3 size keeps reads of the spool in large chunks.
        Ok(Plan { target: Target::Local { location }, default_spool_dir, min_part_size: S3_MIN_PART_SIZE })
    }
}
