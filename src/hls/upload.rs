//! Copies of an HLS output's segments and playlist in the bucket, for a CDN: the header, each
//! complete segment, then the playlist that lists it (without LL-HLS parts: a CDN serves plain
//! HLS from the bucket), in that order, by one task per output. Uploads never hold up the
//! program: the streaming threads only queue them.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use tokio::sync::mpsc;

/// Files queued at most (about a minute of segments and playlists); beyond that the bucket is
/// too slow to keep a live copy and newer files are dropped, with a warning.
const QUEUE: usize = 64;
/// Attempts per file (a segment is only useful for a short while).
const ATTEMPTS: u32 = 3;

enum Job {
    Put { name: String, bytes: Bytes, content_type: &'static str },
    Close,
}

/// Where an output's files go in the bucket: `{prefix}{name}`.
#[derive(Debug, Clone)]
pub struct BucketTarget {
    pub bucket: String,
    /// Ends with `/`.
    pub prefix: String,
}

/// The queue of one output's uploads.
pub struct Uploader {
    jobs: mpsc::Sender<Job>,
}

impl Uploader {
    /// Starts the output's upload task on `runtime`; the client is made on first use.
    pub fn start(runtime: &tokio::runtime::Handle, target: BucketTarget, client: ClientCell) -> Uploader {
        let (jobs, rx) = mpsc::channel(QUEUE);
        runtime.spawn(run(target, client, rx));
        Uploader { jobs }
    }

    /// Queues `name` (a file of the output) for upload; never blocks.
    pub fn file(&self, name: &str, bytes: Bytes, content_type: &'static str) {
        let job = Job::Put { name: name.to_owned(), bytes, content_type };
        if self.jobs.try_send(job).is_err() {
            tracing::warn!(file = name, "the bucket is too slow for the HLS output's live copy: a file was skipped");
        }
    }

    /// No more files: the task ends after the queued ones.
    pub fn close(&self) {
        let _ = self.jobs.try_send(Job::Close);
    }
}

/// The S3 client, made once for all outputs (building it reads the AWS configuration).
pub type ClientCell = std::sync::Arc<tokio::sync::OnceCell<Client>>;

async fn run(target: BucketTarget, client: ClientCell, mut jobs: mpsc::Receiver<Job>) {
    let client = match client
        .get_or_try_init(|| tokio::task::spawn_blocking(|| tessera_plugins::S3Config::default().client()))
        .await
    {
        Ok(c) => c.clone(),
        Err(err) => {
            tracing::error!(%err, "no S3 client: the HLS output is not copied to the bucket");
            return;
        }
    };
    while let Some(job) = jobs.recv().await {
        let Job::Put { name, bytes, content_type } = job else { return };
        let key = format!("{}{name}", target.prefix);
        for attempt in 1..=ATTEMPTS {
            let put = client
                .put_object()
                .bucket(&target.bucket)
                .key(&key)
                .content_type(content_type)
                .body(ByteStream::from(bytes.clone()))
                .send();
            match tokio::time::timeout(Duration::from_secs(20), put).await {
                Ok(Ok(_)) => break,
                Ok(Err(err)) => {
                    let err = aws_sdk_s3::error::DisplayErrorContext(err);
                    tracing::warn!(bucket = %target.bucket, %key, attempt, %err, "HLS upload failed");
                }
                Err(_) => tracing::warn!(bucket = %target.bucket, %key, attempt, "HLS upload timed out"),
            }
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
}
