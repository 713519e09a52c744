//! Test support: a real SeaweedFS on loopback, and ffprobe checks.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use tessera_plugins::S3Config;

pub const ACCESS_KEY: &str = "tessera-test-key";
pub const SECRET_KEY: &str = "tessera-test-secret";

/// `weed` from PATH or ~/.local/bin; missing is a test failure, not a skip.
pub fn weed_binary() -> PathBuf {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".local/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("weed"))
        .find(|p| p.is_file())
        .expect("`weed` (SeaweedFS) not found on PATH or in ~/.local/bin: run scripts/install-deps --with-test-servers")
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect()
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
        let client = s3_config(&format!("http://127.0.0.1:{}", ports[0])).client();
        let mut w = Self { dir, ports, child: None, rt, client };
        w.spawn();
        w
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[0])
    }

    pub fn config(&self) -> S3Config {
        s3_config(&self.endpoint())
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
            let up = TcpStream::connect(("127.0.0.1", self.ports[0])).is_ok()
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

pub fn s3_config(endpoint: &str) -> S3Config {
    S3Config {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.into()),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        ..Default::default()
    }
}

/// Properties for a `tesseras3sink` on this server.
pub fn s3sink_props(w: &Weed, bucket: &str, key: &str, spool: &Path) -> String {
    format!(
        "tesseras3sink bucket={bucket} key={key} endpoint-url={} region=us-east-1 access-key-id={ACCESS_KEY} secret-access-key={SECRET_KEY} spool-dir={}",
        w.endpoint(),
        spool.display()
    )
}

#[derive(Debug)]
pub struct Probe {
    pub duration: f64,
    pub video_codec: String,
    pub audio_codec: Option<String>,
    pub video_frames: u64,
    /// Largest gap between consecutive video frames, in seconds.
    pub max_gap: f64,
}

/// ffprobe: decodes every video frame (counting them) and reads their timestamps.
pub fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "format=duration:stream=codec_type,codec_name,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let find = |t: &str| streams.iter().find(|s| s["codec_type"] == t).cloned();
    let video = find("video").expect("no video stream");
    let ts = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe frames");
    let mut times: Vec<f64> = String::from_utf8_lossy(&ts.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    let max_gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    Probe {
        duration: v["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0),
        video_codec: video["codec_name"].as_str().unwrap_or_default().to_owned(),
        audio_codec: find("audio").and_then(|a| a["codec_name"].as_str().map(str::to_owned)),
        video_frames: video["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0),
        max_gap,
    }
}

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
}

/// Runs a gst-launch style pipeline for `secs` seconds, sends EOS and waits for it.
/// Returns the `tessera-recording` messages and the error, if any.
pub fn run_pipeline(desc: &str, secs: f64, mut during: impl FnMut(f64)) -> (Vec<gst::Structure>, Option<String>) {
    use gst::prelude::*;
    tessera_plugins::register_static().expect("register");
    let pipeline = gst::parse::launch(desc).expect("pipeline");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let bus = pipeline.bus().expect("bus");
    let start = Instant::now();
    let (mut messages, mut error, mut eos_sent) = (Vec::new(), None, false);
    loop {
        let t = start.elapsed().as_secs_f64();
        during(t);
        if t >= secs && !eos_sent {
            pipeline.send_event(gst::event::Eos::new());
            eos_sent = true;
        }
        assert!(t < secs + 180.0, "pipeline did not finish");
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else { continue };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                error = Some(format!("{} ({:?})", e.error(), e.debug()));
                break;
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "tessera-recording") {
                    messages.push(s.to_owned());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("null");
    (messages, error)
}

pub const AUDIO: &str =
    "audiotestsrc is-live=true wave=ticks ! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! mux.";

/// A live H.264 pipeline into mp4mux (fragments of 1 s) and then `sink`.
pub fn live_pipeline(video_caps: &str, bitrate_kbit: u32, pattern: &str, with_audio: bool, sink: &str) -> String {
    format!(
        "videotestsrc is-live=true pattern={pattern} ! {video_caps} ! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast bitrate={bitrate_kbit} ! h264parse ! mp4mux name=mux fragment-duration=1000 streamable=true ! {sink} {}",
        if with_audio { AUDIO } else { "" }
    )
}
