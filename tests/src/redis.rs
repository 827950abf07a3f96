//! A private `redis-server` (the Debian package) on a free loopback port.
//!
//! Each [`RedisServer`] is its own process with no persistence, in its own temp dir, killed
//! on drop. It can be stopped and started again on the same port (to test a proxy that
//! loses its Redis mid-run) and paused with SIGSTOP (to test a slow Redis).
//!
//! The calls are blocking (they spawn processes and poll a socket for at most a few
//! seconds); they are fine to call from async tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::poll::{EVERY, poll_blocking};
use crate::ports::free_port;

/// How long [`RedisServer::start`] waits for `PING` to answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running private `redis-server`. Killed on drop.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts an empty `redis-server` on a free loopback port and waits until it answers PING.
    ///
    /// Panics with a hint when `redis-server` is not installed (`make test` installs it).
    pub fn start() -> RedisServer {
        RedisServer::start_on_port(free_port())
    }

    /// Starts an empty server on this port (e.g. one a proxy already points at).
    pub fn start_on_port(port: u16) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("cmw-redis-")
            .tempdir()
            .expect("create a temp dir for redis-server");
        let mut server = RedisServer {
            port,
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    /// [`RedisServer::start_on_port`], then the relay fixtures.
    pub fn start_on_port_with_fixtures(port: u16) -> RedisServer {
        let server = RedisServer::start_on_port(port);
        server.load_fixtures();
        server
    }

    /// Starts a server and loads the relay fixtures into it (see [`RedisServer::load_fixtures`]).
    pub fn start_with_fixtures() -> RedisServer {
        let server = RedisServer::start();
        server.load_fixtures();
        server
    }

    /// The port it listens on (kept across [`RedisServer::stop`] / [`RedisServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`, for `REDIS_URL`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The pid of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether a server process is running (it may be paused).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Loads `relay-accounts.redis` (eight relay accounts, the id set and one non-hash key)
    /// by piping it through `redis-cli`. See [`fixtures_dir`] for where it is looked up.
    pub fn load_fixtures(&self) {
        self.load_file(fixtures_dir().join("relay-accounts.redis"));
    }

    /// Pipes a file of redis commands through `redis-cli -p PORT` inside one
    /// MULTI/EXEC, so a proxy refreshing meanwhile sees all of it or none (a
    /// half-loaded pool would make "ready" mean less than the test thinks);
    /// panics on any error reply.
    pub fn load_file(&self, path: impl Into<PathBuf>) {
        let path = path.into();
        let commands = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("open redis fixture {}: {e}", path.display()));
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run redis-cli (is redis-tools installed?)");
        let mut stdin = child.stdin.take().expect("redis-cli stdin");
        stdin
            .write_all(format!("MULTI\n{}\nEXEC\n", commands.trim_end()).as_bytes())
            .expect("write to redis-cli");
        drop(stdin);
        let out = child.wait_with_output().expect("wait for redis-cli");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !stdout.contains("ERR") && !stdout.contains("EXECABORT"),
            "loading {} failed: {}\n{stdout}\n{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `redis-cli -p PORT ARGS...` and returns its trimmed stdout
    /// (e.g. `cli(&["SCARD", "claude:account:index"])` → `"8"`).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli (is redis-tools installed?)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Kills the server (SIGKILL: like a crashed or unreachable Redis). The port is kept for
    /// [`RedisServer::restart`]. Harmless when it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused process dies from SIGKILL too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty. Stops it first if it runs.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts the server again on the same port and loads the relay fixtures.
    pub fn restart_with_fixtures(&mut self) {
        self.restart();
        self.load_fixtures();
    }

    /// Freezes the server with SIGSTOP for `duration`, then lets it go on with SIGCONT (from a
    /// background thread; this call returns at once). Clients see a Redis that accepts
    /// connections but answers nothing until then.
    pub fn pause(&self, duration: Duration) {
        let Some(pid) = self.pid() else { return };
        signal(pid, "STOP");
        std::thread::spawn(move || {
            std::thread::sleep(duration);
            signal(pid, "CONT");
        });
    }

    /// Freezes the server with SIGSTOP until [`RedisServer::resume`].
    pub fn pause_indefinitely(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "STOP");
        }
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "CONT");
        }
    }

    /// The server's own log (its stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .expect("create redis.log");
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {bin}: {e} (install it: apt-get install -y redis-server; `make test` does)")
            });
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let up = poll_blocking(START_TIMEOUT, EVERY, || {
            if ping(self.port) {
                return Some(true);
            }
            (!self.is_running()).then_some(false)
        });
        match up {
            Some(true) => {}
            Some(false) => panic!(
                "redis-server on port {} exited at start:\n{}",
                self.port,
                self.log()
            ),
            None => panic!(
                "redis-server on port {} did not answer PING within {START_TIMEOUT:?}:\n{}",
                self.port,
                self.log()
            ),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The folder of the relay fixtures: `$CLAUDE_MIDDLEWARE_FIXTURES` when set, else the
/// copy in this repository (`tests/fixtures`), so a fresh clone needs nothing beside it.
/// `tests/tests/redis_harness.rs` checks that copy against the project's shared fixtures
/// (`<repo>/../shared/fixtures`) wherever those are present.
pub fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLAUDE_MIDDLEWARE_FIXTURES") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Where the project's shared fixtures live when the repository sits beside them.
pub fn shared_fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// One raw `PING` over TCP; true on `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG"),
        Err(_) => false,
    }
}

/// Sends a signal by name with `kill(1)` (keeps the crate free of `unsafe` libc calls).
fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}
