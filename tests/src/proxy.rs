//! The real `claude-middleware` binary as a child process.
//!
//! [`ProxyProcess::start`] runs it with a controlled environment (only `PATH` and a few
//! harmless variables are inherited, `PORT` is a free port unless given), sends its stdout
//! and stderr to files in a temp dir, and waits until `GET /health` answers 200.
//!
//! The binary is looked up beside the running test executable (cargo puts test executables
//! in `target/<profile>/deps/` and binaries in `target/<profile>/`), or taken from
//! `$CLAUDE_MIDDLEWARE_BIN`. Build it first with `cargo build --workspace --bins`.
//!
//! The calls are blocking (process control and a short poll loop); they are fine to call
//! from async tests as long as nothing the proxy needs at start-up runs on the same
//! single-threaded runtime (Redis and the backend are not needed for `/health`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::poll::{EVERY, poll_blocking};
use crate::ports::free_port;

/// How long [`ProxyProcess::start`] waits for `/health`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`ProxyProcess::spawn_expect_exit`] waits for the process to give up.
pub const EXPECT_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Variables passed through from the test's environment; everything else is cleared so the
/// developer's shell (a `PORT`, a `REDIS_URL`) cannot change what a test sees.
const INHERITED: &[&str] = &["PATH", "HOME", "TMPDIR", "RUST_BACKTRACE", "LANG"];

/// A running `claude-middleware` process. Killed (SIGKILL) on drop.
pub struct ProxyProcess {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    exit: Option<ExitStatus>,
}

impl ProxyProcess {
    /// Starts the real binary with these environment variables (plus `PORT`, unless given)
    /// and waits until `GET /health` answers 200. Panics with the process's logs when it
    /// exits early or is not healthy within [`START_TIMEOUT`].
    pub fn start(envs: &[(&str, &str)]) -> ProxyProcess {
        ProxyProcess::start_binary(&binary_path(), envs)
    }

    /// Like [`ProxyProcess::start`], for another binary that follows the same conventions
    /// (`PORT` env, `GET /health`), e.g. the stand-in relay when testing this harness.
    pub fn start_binary(binary: &Path, envs: &[(&str, &str)]) -> ProxyProcess {
        let mut proxy = ProxyProcess::spawn_binary(binary, envs);
        proxy.wait_healthy(START_TIMEOUT);
        proxy
    }

    /// Starts the real binary without waiting for `/health` (see [`ProxyProcess::wait_healthy`]).
    pub fn spawn(envs: &[(&str, &str)]) -> ProxyProcess {
        ProxyProcess::spawn_binary(&binary_path(), envs)
    }

    /// Starts `binary` without waiting for anything.
    pub fn spawn_binary(binary: &Path, envs: &[(&str, &str)]) -> ProxyProcess {
        let dir = tempfile::Builder::new()
            .prefix("cmw-proxy-")
            .tempdir()
            .expect("create a temp dir for the proxy's logs");
        let port = match envs.iter().find(|(k, _)| *k == "PORT") {
            Some((_, v)) => v.parse().unwrap_or(0),
            None => free_port(),
        };
        let stdout =
            std::fs::File::create(dir.path().join("stdout.log")).expect("create stdout.log");
        let stderr =
            std::fs::File::create(dir.path().join("stderr.log")).expect("create stderr.log");
        let mut cmd = command(binary, envs, port);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        ProxyProcess {
            child,
            port,
            dir,
            exit: None,
        }
    }

    /// Runs the real binary with these variables and expects it to exit by itself (bad
    /// configuration). Returns its exit status and stderr. Panics if it is still running
    /// after [`EXPECT_EXIT_TIMEOUT`].
    pub fn spawn_expect_exit(envs: &[(&str, &str)]) -> (ExitStatus, String) {
        let mut proxy = ProxyProcess::spawn(envs);
        match proxy.wait_exit(EXPECT_EXIT_TIMEOUT) {
            Some(status) => (status, proxy.stderr()),
            None => {
                let logs = proxy.logs();
                proxy.kill();
                panic!(
                    "claude-middleware was expected to exit but still ran after {EXPECT_EXIT_TIMEOUT:?}; logs:\n{logs}"
                )
            }
        }
    }

    /// Waits until `GET /health` answers 200; panics with the logs on exit or timeout.
    pub fn wait_healthy(&mut self, timeout: Duration) {
        let healthy = poll_blocking(timeout, Duration::from_millis(25), || {
            if http_status(self.port, "/health") == Some(200) {
                return Some(true);
            }
            (!self.is_running()).then_some(false)
        });
        match healthy {
            Some(true) => {}
            Some(false) => panic!(
                "the proxy exited at start-up ({:?}); logs:\n{}",
                self.exit,
                self.logs()
            ),
            None => panic!(
                "the proxy on port {} did not answer GET /health with 200 within {timeout:?}; logs:\n{}",
                self.port,
                self.logs()
            ),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Sends SIGTERM (graceful shutdown); returns at once.
    pub fn sigterm(&self) {
        signal(self.pid(), "TERM");
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exit = Some(status);
            }
        }
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_blocking(timeout, EVERY, || (!self.is_running()).then_some(self.exit)).flatten()
    }

    /// What the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// stdout and stderr so far, labelled, for assertions and failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where the `claude-middleware` binary is: `$CLAUDE_MIDDLEWARE_BIN`, else beside the
/// running test executable's `deps/` folder. Panics with a hint when it is missing.
pub fn binary_path() -> PathBuf {
    if let Some(bin) = std::env::var_os("CLAUDE_MIDDLEWARE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("path of the running test executable");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/claude-middleware
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("claude-middleware{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (or set CLAUDE_MIDDLEWARE_BIN)",
        bin.display()
    );
    bin
}

fn command(binary: &Path, envs: &[(&str, &str)], port: u16) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear();
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.env("PORT", port.to_string());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// One blocking `GET path` over a fresh connection; the status code, or `None` on any error.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Sends a signal by name with `kill(1)` (keeps the crate free of `unsafe` libc calls).
fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}
