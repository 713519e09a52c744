//! TLS for tests: a test certificate authority made by openssl, and stunnel terminating TLS
//! on a free loopback port in front of a plain TCP server (RTMPS in front of nginx-rtmp).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::ports::{free_port, wait_listening};
use crate::process::require;

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

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
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
