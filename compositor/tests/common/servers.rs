//! Real servers for output tests, started on free loopback ports and stopped on drop: nginx
//! with its RTMP module (recording what it receives), stunnel as the TLS terminator for RTMPS
//! with a test CA made by openssl, and a "black hole" that accepts connections and never
//! answers. A missing server program fails the test: it is installed by scripts/install-deps.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn wait_listening(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        assert!(Instant::now() < deadline, "{what} does not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn require(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(found, "{program} is not installed: run scripts/install-deps --with-test-servers");
}

/// nginx with the RTMP module, one process, recording every published stream as FLV.
pub struct NginxRtmp {
    pub port: u16,
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
}

impl NginxRtmp {
    pub fn start() -> NginxRtmp {
        require("nginx");
        let dir = tempfile::Builder::new().prefix("tessera-nginx").tempdir().expect("temp dir");
        let mut server = NginxRtmp { port: free_port(), dir: Some(dir), child: None };
        server.write_config();
        server.restart();
        server
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new("/nonexistent"))
    }

    fn write_config(&self) {
        let d = self.dir();
        let rec = d.join("rec");
        std::fs::create_dir_all(&rec).expect("record dir");
        // Run as root, nginx writes recordings as `nobody`: let it in.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
        let _ = std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(0o777));
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{\n  server {{\n    listen 127.0.0.1:{port};\n    chunk_size 4096;\n\
                 application live {{\n      live on;\n      record all;\n\
                   record_path {rec};\n      record_unique on;\n    }}\n  }}\n}}\n",
            d = d.display(),
            port = self.port,
            rec = rec.display()
        );
        std::fs::write(d.join("nginx.conf"), conf).expect("nginx.conf");
    }

    /// Starts (again) on the same port, keeping earlier recordings.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "nginx is already running");
        let d = self.dir();
        let mut child = Command::new("nginx")
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-p")
            .arg(format!("{}/", d.display()))
            .arg("-e")
            .arg(d.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        wait_listening(self.port, "nginx", &mut child);
        self.child = Some(child);
    }

    /// Kills the server without warning (its clients see the connection drop).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the server: connections stay open but nothing is read (a stalled ingest).
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args([&format!("-{sig}"), &c.id().to_string()]).status();
        }
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// The FLV files nginx recorded for `key`, oldest first (one per publish).
    pub fn recordings(&self, key: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir().join("rec"))
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{key}-")) && n.ends_with(".flv"))
        });
        // record_unique names files KEY-<unix time>.flv; sort by that, then by name.
        files.sort_by_key(|p| (std::fs::metadata(p).and_then(|m| m.created()).ok(), p.clone()));
        files
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("error.log")).unwrap_or_default()
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        self.thaw();
        self.kill();
        // A failed test keeps what nginx received, for a look.
        if let Some(dir) = self.dir.take()
            && std::thread::panicking()
        {
            eprintln!("nginx recordings kept in {}", dir.keep().display());
        }
    }
}

/// A test certificate authority and a server certificate for 127.0.0.1 / localhost.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    pub fn new() -> TestCa {
        require("openssl");
        let dir = tempfile::Builder::new().prefix("tessera-ca").tempdir().expect("temp dir");
        let d = dir.path();
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(d).output().expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Tessera Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .expect("ext.cnf");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        TestCa { ca_cert: d.join("ca.pem"), server_cert: d.join("server.pem"), server_key: d.join("server.key"), dir }
    }
}

/// stunnel terminating TLS on `port` and forwarding to a plain TCP port.
pub struct Stunnel {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Stunnel {
    pub fn start(ca: &TestCa, forward_to: u16) -> Stunnel {
        require("stunnel4");
        let dir = tempfile::Builder::new().prefix("tessera-stunnel").tempdir().expect("temp dir");
        let port = free_port();
        let conf = format!(
            "foreground = yes\npid =\ndebug = 4\n[rtmps]\naccept = 127.0.0.1:{port}\n\
             connect = 127.0.0.1:{forward_to}\ncert = {cert}\nkey = {key}\n",
            cert = ca.server_cert.display(),
            key = ca.server_key.display()
        );
        let path = dir.path().join("stunnel.conf");
        std::fs::write(&path, conf).expect("stunnel.conf");
        let mut child = Command::new("stunnel4")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel starts");
        wait_listening(port, "stunnel", &mut child);
        Stunnel { port, _dir: dir, child }
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Accepts TCP connections and never reads or answers (an ingest that hangs).
pub struct BlackHole {
    pub port: u16,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                held.push(conn);
            }
        });
        BlackHole { port }
    }
}

/// Video packet timestamps (s) of a file, read by ffprobe.
pub fn video_packet_times(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// Asserts packet times step by one frame (FLV keeps milliseconds) and returns the count.
pub fn assert_no_frame_lost(times: &[f64], fps: f64, what: &str) -> usize {
    let step = 1.0 / fps;
    assert!(times.first().is_some_and(|t| *t < 0.1), "{what}: starts at {:?}", times.first());
    for w in times.windows(2) {
        let d = w[1] - w[0];
        assert!(
            (d - step).abs() < 0.0025,
            "{what}: frame gap {:.3} -> {:.3} (of {} frames; first: {:?})",
            w[0],
            w[1],
            times.len(),
            &times[..times.len().min(12)]
        );
    }
    times.len()
}
