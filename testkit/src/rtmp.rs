//! nginx with its RTMP module as the RTMP ingest of streaming tests, on a free loopback port,
//! recording every stream it receives as FLV; and a "black hole" ingest that accepts
//! connections and never answers. RTMPS: stunnel in front of nginx ([`crate::tls`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::ports::{free_port, wait_listening};
use crate::process::require;

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
