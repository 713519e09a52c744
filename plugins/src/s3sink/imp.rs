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
use crate::storage::s3::S3Config;

#[derive(Debug, Clone)]
struct Settings {
    bucket: Option<String>,
    key: Option<String>,
    s3: S3Config,
    spool_dir: Option<PathBuf>,
    min_part_size: u64,
    finish_timeout_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bucket: None,
            key: None,
            s3: S3Config::default(),
            spool_dir: None,
            min_part_size: S3_MIN_PART_SIZE,
            finish_timeout_ms: sink::DEFAULT_FINISH_TIMEOUT_MS,
        }
    }
}

#[derive(Default)]
pub struct S3MultipartSink {
    settings: Mutex<Settings>,
    core: SinkCore,
}

impl S3MultipartSink {
    fn settings(&self) -> Settings {
        self.settings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[glib::object_subclass]
impl ObjectSubclass for S3MultipartSink {
    const NAME: &'static str = "TesseraS3MultipartSink";
    type Type = super::S3MultipartSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for S3MultipartSink {
    fn constructed(&self) {
        self.parent_constructed();
        // Like filesink: write as fast as data comes, no clock sync.
        self.obj().set_sync(false);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                sink::string_pspec("bucket", "S3 bucket"),
                sink::string_pspec("key", "S3 object key"),
                sink::string_pspec("region", "AWS region (default: AWS_REGION or the AWS configuration, else us-east-1)"),
                sink::string_pspec("endpoint-url", "S3-compatible endpoint URL (default: AWS_ENDPOINT_URL)"),
                glib::ParamSpecBoolean::builder("force-path-style")
                    .blurb("Path-style addressing when an endpoint URL is set")
                    .default_value(true)
                    .mutable_ready()
                    .build(),
                sink::secret_pspec("access-key-id", "Access key id (write-only; default: AWS configuration)"),
                sink::secret_pspec("secret-access-key", "Secret access key (write-only)"),
                sink::secret_pspec("session-token", "Session token (write-only)"),
                sink::spool_dir_pspec(),
                glib::ParamSpecUInt64::builder("min-part-size")
                    .blurb("Smallest part in bytes (S3 requires 5 MiB for all parts but the last); parts grow with the part count")
                    .minimum(1024)
                    .maximum(crate::planner::S3_MAX_PART_SIZE)
                    .default_value(S3_MIN_PART_SIZE)
                    .mutable_ready()
                    .build(),
                sink::finish_timeout_pspec(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "bucket" => s.bucket = sink::opt_string(value),
            "key" => s.key = sink::opt_string(value),
            "region" => s.s3.region = sink::opt_string(value),
            "endpoint-url" => s.s3.endpoint_url = sink::opt_string(value),
            "force-path-style" => s.s3.force_path_style = Some(value.get().unwrap_or(true)),
            "access-key-id" => s.s3.access_key_id = sink::opt_string(value),
            "secret-access-key" => s.s3.secret_access_key = sink::opt_string(value),
            "session-token" => s.s3.session_token = sink::opt_string(value),
            "spool-dir" => s.spool_dir = sink::opt_string(value).map(PathBuf::from),
            "min-part-size" => s.min_part_size = value.get().unwrap_or(S3_MIN_PART_SIZE),
            "finish-timeout" => s.finish_timeout_ms = value.get().unwrap_or(sink::DEFAULT_FINISH_TIMEOUT_MS),
            _ => {}
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings();
        match pspec.name() {
            "bucket" => s.bucket.to_value(),
            "key" => s.key.to_value(),
            "region" => s.s3.region.to_value(),
            "endpoint-url" => s.s3.endpoint_url.to_value(),
            "force-path-style" => s.s3.force_path_style.unwrap_or(true).to_value(),
            "spool-dir" => s.spool_dir.map(|p| p.display().to_string()).to_value(),
            "min-part-size" => s.min_part_size.to_value(),
            "finish-timeout" => s.finish_timeout_ms.to_value(),
            // Credentials are write-only.
            _ => None::<String>.to_value(),
        }
    }
}

impl GstObjectImpl for S3MultipartSink {}

impl ElementImpl for S3MultipartSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Tessera S3 recording sink",
                "Sink/Network",
                "Records fragmented MP4 to S3 by multipart upload through a local spool and journal (crash-safe)",
                "Tessera developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        crate::sink_pad_templates()
    }
}

impl BaseSinkImpl for S3MultipartSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self.settings();
        let (Some(bucket), Some(key)) = (s.bucket, s.key) else {
            return Err(gst::error_msg!(gst::ResourceError::Settings, ["The bucket and key properties are required"]));
        };
        let spool_dir = s.spool_dir.unwrap_or_else(sink::default_spool_dir);
        let target = Target::S3 { bucket, key, config: s.s3 };
        self.core.start(self.obj().upcast_ref(), target, &spool_dir, s.min_part_size)
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
