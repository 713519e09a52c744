//! Free loopback ports, for servers whose flags cannot take port 0, and waiting for a server
//! to listen on its port.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Child;
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// `n` different TCP ports on 127.0.0.1 that were free a moment ago (held together while they
/// are picked, so none comes twice).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

/// A UDP port on 127.0.0.1 that was free a moment ago, and TCP too on the same number (for
/// servers that listen on both, such as coturn or the SFU's shared port).
pub fn free_udp_port() -> u16 {
    loop {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let port = socket.local_addr().expect("local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits (10 s at most) until something accepts TCP connections on 127.0.0.1:`port`; fails
/// the test if `child` (the server called `what`) exits first.
pub fn wait_listening(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        assert!(Instant::now() < deadline, "{what} does not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
