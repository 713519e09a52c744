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
use crate::storage::s3::S3Config;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("tesseras3sink", gst::DebugColorFlags::empty(), Some("Tessera S3 recording sink"))
});

#[derive(Debug, Clone)]
struct Settings {
    bucket: Option<String>,
    key: Option<String>,
    s3: S3Config,
    min_part_size: u64,
    tail_objects: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { bucket: None, key: None, s3: S3Config::default(), min_part_size: S3_MIN_PART_SIZE, tail_objects: false }
    }
}

#[derive(Default)]
pub struct S3MultipartSink {
    settings: Mutex<Settings>,
}

impl S3MultipartSink {
    fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }
}

#[glib::object_subclass]
impl ObjectSubclass for S3MultipartSink {
    const NAME: &'static str = "TesseraS3MultipartSink";
    type Type = super::S3MultipartSink;
    type ParentType = crate::recordingsink::RecordingSink;
}

impl ObjectImpl for S3MultipartSink {
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
                glib::ParamSpecUInt64::builder("min-part-size")
                    .blurb("Smallest part in bytes (S3 requires 5 MiB for all parts but the last); parts grow with the part count")
                    .minimum(1024)
                    .maximum(crate::planner::S3_MAX_PART_SIZE)
                    .default_value(S3_MIN_PART_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("tail-objects")
                    .blurb(
                        "Also store each fragment not yet in a part as a small object KEY.tail/OFFSET as soon as it is \
                         in the spool, so that another machine can complete the upload (complete_abandoned) if this \
                         one dies; deleted once the upload is complete",
                    )
                    .default_value(false)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "bucket" => s.bucket = sink::opt_string(value),
            "key" => s.key = sink::opt_string(value),
            "region" => s.s3.region = sink::opt_string(value),
            "endpoint-url" => s.s3.endpoint_url = sink::opt_string(value),
            "force-path-style" => s.s3.force_path_style = Some(value.get().unwrap_or(true)),
            "access-key-id" => s.s3.access_key_id = sink::opt_string(value),
            "secret-access-key" => s.s3.secret_access_key = sink::opt_string(value),
            "session-token" => s.s3.session_token = sink::opt_string(value),
            "min-part-size" => s.min_part_size = value.get().unwrap_or(S3_MIN_PART_SIZE),
            "tail-objects" => s.tail_objects = value.get().unwrap_or(false),
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
            "min-part-size" => s.min_part_size.to_value(),
            "tail-objects" => s.tail_objects.to_value(),
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
}

impl BaseSinkImpl for S3MultipartSink {}

impl RecordingSinkImpl for S3MultipartSink {
    fn plan(&self) -> Result<Plan, gst::ErrorMessage> {
        let s = self.settings();
        let (Some(bucket), Some(key)) = (s.bucket, s.key) else {
            return Err(gst::error_msg!(gst::ResourceError::Settings, ["The bucket and key properties are required"]));
        };
        gst::debug!(CAT, imp = self, "recording to s3://{bucket}/{key} (tail objects: {})", s.tail_objects);
        Ok(Plan {
            target: Target::S3 { bucket, key, config: s.s3, tail_objects: s.tail_objects },
            default_spool_dir: sink::default_spool_dir(),
            min_part_size: s.min_part_size,
        })
    }
}
