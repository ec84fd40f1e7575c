//! A real `redis-server` for the Redis store tests: its own process on a
//! free loopback port, its files in a temp dir, killed on drop. Durable by
//! default (`--appendonly yes --appendfsync always`), like production
//! should be; [`RedisServer::start_without_aof`] for the warning case.
//!
//! Without `redis-server` on PATH the Redis tests skip: [`RedisServer::start`]
//! returns `None`, and one line says so for the whole run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::free_port;

/// The server process; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    aof: bool,
    /// The port of the server this one replicates.
    replica_of: Option<u16>,
    dir: TempDir,
}

/// Whether `redis-server` can be run here (checked once).
pub fn available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    static SAID: Once = Once::new();
    let found = *FOUND.get_or_init(|| {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !found {
        // Straight to stderr: the test harness captures `eprintln!` of
        // passing tests, and this line must be seen.
        SAID.call_once(|| {
            let _ =
                std::io::stderr().write_all(b"redis-server not found: skipping the Redis tests\n");
        });
    }
    found
}

impl RedisServer {
    /// A durable server (AOF, fsync always), or `None` without `redis-server`.
    pub fn start() -> Option<RedisServer> {
        Self::with(true, None)
    }

    /// A server that keeps nothing on disk.
    pub fn start_without_aof() -> Option<RedisServer> {
        Self::with(false, None)
    }

    /// A replica of `master` (no AOF), once `master` counts it as connected.
    pub fn start_replica_of(master: &RedisServer) -> Option<RedisServer> {
        let replica = Self::with(false, Some(master.port))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !master
            .cli(&["INFO", "replication"])
            .contains("connected_slaves:1")
        {
            assert!(Instant::now() < deadline, "the replica did not connect");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(replica)
    }

    fn with(aof: bool, replica_of: Option<u16>) -> Option<RedisServer> {
        if !available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = RedisServer {
            child: None,
            port: 0,
            aof,
            replica_of,
            dir,
        };
        // A port found free can be taken before the server binds it: retry.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("redis-server did not start");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kill the server (SIGKILL: nothing is flushed beyond what fsync did).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port with the same files.
    pub fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server did not restart");
    }

    /// Run a command with `redis-cli` against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            // A replica is served at once, not after the default 5 s pause.
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(self.dir.path());
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        if let Some(master) = self.replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &master.to_string()]);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // exited: the port was taken
            }
            if ping(self.port) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `PING` answered with `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
