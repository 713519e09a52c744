//! The S3-compatible store tests record into: SeaweedFS (`weed mini`, installed by
//! `scripts/install-deps --with-test-servers`) on free loopback ports with its own data
//! directory, and a client of its own to create buckets and read back what was written.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};

use crate::ports::free_ports;

/// The store's one identity (admin rights).
pub const ACCESS_KEY: &str = "tessera-test-key";
pub const SECRET_KEY: &str = "tessera-test-secret";

/// `weed` from PATH or ~/.local/bin; missing is a test failure, not a skip.
pub fn weed_binary() -> PathBuf {
    crate::process::find("weed")
        .expect("`weed` (SeaweedFS) not found on PATH or in ~/.local/bin: run scripts/install-deps --with-test-servers")
}

/// A SeaweedFS (`weed mini`) on free loopback ports, killed on drop.
pub struct Weed {
    pub dir: tempfile::TempDir,
    ports: Vec<u16>,
    child: Option<Child>,
    rt: tokio::runtime::Runtime,
    pub client: Client,
}

impl Weed {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let s3json = format!(
            r#"{{"identities":[{{"name":"tessera","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        std::fs::write(dir.path().join("s3.json"), s3json).expect("s3.json");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        let ports = free_ports(12);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let client = client(&format!("http://127.0.0.1:{}", ports[0]));
        let mut w = Self { dir, ports, child: None, rt, client };
        w.spawn();
        w
    }

    /// `http://127.0.0.1:PORT`, its S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[0])
    }

    /// The environment that points the AWS SDK (and so `tessera serve`) at this store:
    /// `AWS_ENDPOINT_URL`, the access key, its secret and region `us-east-1`.
    pub fn aws_env(&self) -> [(&'static str, String); 4] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }

    /// Starts (or restarts) the server on the same ports and data.
    pub fn spawn(&mut self) {
        let d = self.dir.path();
        let data = d.join("data");
        let p = &self.ports;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(d.join("weed.log")).expect("log");
        let args = vec![
            "mini".to_string(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.port={}", p[0]),
            format!("-s3.port.grpc={}", p[1]),
            format!("-master.port={}", p[2]),
            format!("-master.port.grpc={}", p[3]),
            format!("-volume.port={}", p[4]),
            format!("-volume.port.grpc={}", p[5]),
            format!("-filer.port={}", p[6]),
            format!("-filer.port.grpc={}", p[7]),
            format!("-s3.port.iceberg={}", p[8]),
            format!("-s3.port.lance={}", p[9]),
            format!("-admin.port={}", p[10]),
            format!("-admin.port.grpc={}", p[11]),
            format!("-s3.config={}", d.join("s3.json").display()),
            format!("-s3.localSocket={}", data.join("s3.sock").display()),
            format!("-filer.localSocket={}", data.join("filer.sock").display()),
            "-s3.autoCreateBucket=false".into(),
            "-webdav=false".into(),
            "-admin.ui=false".into(),
            "-master.telemetry=false".into(),
        ];
        let child = Command::new(weed_binary())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("cannot start weed");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = std::net::TcpStream::connect(("127.0.0.1", self.ports[0])).is_ok()
                && self.rt.block_on(self.client.list_buckets().send()).is_ok();
            if up {
                return;
            }
            assert!(Instant::now() < deadline, "SeaweedFS did not answer; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// Kills the server (its data stays, for [`Weed::spawn`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn create_bucket(&self, bucket: &str) {
        // The filer may need a moment after the S3 port opens.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.rt.block_on(self.client.create_bucket().bucket(bucket).send()) {
                Ok(_) => return,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("create bucket: {e:?}; retrying");
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(e) => panic!("create bucket {bucket}: {e:?}"),
            }
        }
    }

    /// An object's bytes and ETag.
    pub fn get(&self, bucket: &str, key: &str) -> (Vec<u8>, Option<String>) {
        let out = self.rt.block_on(self.client.get_object().bucket(bucket).key(key).send()).expect("GetObject");
        let etag = out.e_tag().map(str::to_owned);
        let body = self.rt.block_on(out.body.collect()).expect("body").into_bytes().to_vec();
        (body, etag)
    }

    pub fn object_exists(&self, bucket: &str, key: &str) -> bool {
        self.rt.block_on(self.client.head_object().bucket(bucket).key(key).send()).is_ok()
    }

    /// (key, upload id) of the multipart uploads in progress.
    pub fn uploads(&self, bucket: &str) -> Vec<(String, String)> {
        let out =
            self.rt.block_on(self.client.list_multipart_uploads().bucket(bucket).send()).expect("ListMultipartUploads");
        out.uploads()
            .iter()
            .map(|u| (u.key().unwrap_or_default().to_owned(), u.upload_id().unwrap_or_default().to_owned()))
            .collect()
    }

    pub fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) {
        self.rt
            .block_on(self.client.abort_multipart_upload().bucket(bucket).key(key).upload_id(upload_id).send())
            .expect("AbortMultipartUpload");
    }

    pub fn list_part_sizes(&self, bucket: &str, key: &str, upload_id: &str) -> Vec<i64> {
        let out = self
            .rt
            .block_on(self.client.list_parts().bucket(bucket).key(key).upload_id(upload_id).send())
            .expect("ListParts");
        out.parts().iter().map(|p| p.size().unwrap_or(0)).collect()
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client of the store at `endpoint` with the test identity: path-style, one attempt per
/// call (callers wait and retry themselves), plain payloads (no trailing checksums).
fn client(endpoint: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "tessera-testkit"))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(120))
                .build(),
        )
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}
