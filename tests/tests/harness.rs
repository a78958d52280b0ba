//! Running `whatnext --headless` and talking to it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Network flags for tests: everything stays on loopback (no mDNS on real interfaces, and
/// direct connections accepted on 127.0.0.1 only).
pub const LOOPBACK: &[&str] = &["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"];

/// Generous: these wait for a reply that normally takes milliseconds.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Waits, up to `TIMEOUT`, for a child process to end by itself.
pub fn wait_for_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not exit within {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a child's output on a thread, a line at a time, through `parse`.
pub fn read_lines<T: Send + 'static>(
    output: impl std::io::Read + Send + 'static,
    parse: impl Fn(String) -> T + Send + 'static,
) -> Receiver<T> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if tx.send(parse(line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// The `whatnext` binary built next to this test.
pub fn binary() -> PathBuf {
    sibling_binary("whatnext")
}

/// A workspace binary built next to this test, or in `WHATNEXT_BIN_DIR` when set (so work
/// trees sharing one target dir can each test their own copy of the binaries).
pub fn sibling_binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("WHATNEXT_BIN_DIR") {
        let bin = Path::new(&dir).join(name);
        assert!(
            bin.exists(),
            "{} is missing (WHATNEXT_BIN_DIR)",
            bin.display()
        );
        return bin;
    }
    let exe = std::env::current_exe().expect("test exe path");
    // target/<profile>/deps/main-<hash> → target/<profile>/<name>; a benchmark (built in
    // release) drives the debug binaries the tests use.
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let mut bin = profile_dir.join(name);
    if !bin.exists()
        && let Some(debug) = profile_dir.parent().map(|t| t.join("debug").join(name))
        && debug.exists()
    {
        bin = debug;
    }
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        bin.display()
    );
    bin
}

pub struct Headless {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    /// Events seen while waiting for replies.
    pub events: Vec<Value>,
    next_id: u64,
}

impl Headless {
    /// Starts offline: tests of local behaviour need no network thread.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &["--offline"])
    }

    pub fn start_with(data_dir: &Path, flags: &[&str]) -> Self {
        Self::spawn(Command::new(binary()), data_dir, flags)
    }

    /// Starts with extra environment variables (e.g. a skewed test clock).
    #[allow(dead_code)]
    pub fn start_with_env(data_dir: &Path, flags: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary());
        command.envs(env.iter().copied());
        Self::spawn(command, data_dir, flags)
    }

    /// Starts inside a network namespace (`ip netns exec NS whatnext …`).
    pub fn start_in_netns(netns: &str, data_dir: &Path, flags: &[&str]) -> Self {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns]).arg(binary());
        Self::spawn(command, data_dir, flags)
    }

    /// Starts `command` (which ends by running the binary) with the usual arguments.
    #[allow(dead_code)]
    pub fn spawn_command(command: Command, data_dir: &Path, flags: &[&str]) -> Self {
        Self::spawn(command, data_dir, flags)
    }

    fn spawn(command: Command, data_dir: &Path, flags: &[&str]) -> Self {
        Self::spawn_with_stderr(command, data_dir, flags, Stdio::inherit())
    }

    /// Starts with extra environment variables, its log (stderr) read line by line.
    #[allow(dead_code)]
    pub fn start_reading_log(
        data_dir: &Path,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> (Self, Receiver<String>) {
        let mut command = Command::new(binary());
        command.envs(env.iter().copied());
        let mut app = Self::spawn_with_stderr(command, data_dir, flags, Stdio::piped());
        let log = read_lines(app.child.stderr.take().expect("stderr"), |line| line);
        (app, log)
    }

    fn spawn_with_stderr(
        mut command: Command,
        data_dir: &Path,
        flags: &[&str],
        stderr: Stdio,
    ) -> Self {
        let mut child = command
            .arg("--headless")
            .arg("--data-dir")
            .arg(data_dir)
            .args(flags)
            // WHATNEXT_TEST_LOG=info shows the apps' logs when debugging a test.
            .env(
                "RUST_LOG",
                std::env::var("WHATNEXT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start whatnext --headless");
        let stdout = child.stdout.take().expect("stdout");
        let rx = read_lines(stdout, |line| {
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"))
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            events: Vec::new(),
            next_id: 0,
        }
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write request");
        stdin.flush().expect("flush");
    }

    /// The next line with this id, keeping events aside.
    pub fn reply_to(&mut self, id: &Value) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.get("event").is_some() => self.events.push(line),
                Ok(line) if line.get("id") == Some(id) => return line,
                Ok(line) => panic!("a reply to another request: {line}"),
                Err(RecvTimeoutError::Timeout) => panic!("no reply to id {id} within {TIMEOUT:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("whatnext closed stdout before replying to {id}")
                }
            }
        }
    }

    /// The replies to several requests, whatever order they come in.
    pub fn replies_to(&mut self, ids: &[Value]) -> Vec<Value> {
        let deadline = Instant::now() + TIMEOUT;
        let mut got: std::collections::HashMap<String, Value> = Default::default();
        while got.len() < ids.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.get("event").is_some() => self.events.push(line),
                Ok(line) if ids.iter().any(|id| line.get("id") == Some(id)) => {
                    got.insert(line["id"].to_string(), line);
                }
                Ok(line) => panic!("a reply to another request: {line}"),
                Err(e) => panic!(
                    "{} of {} replies within {TIMEOUT:?}: {e}",
                    got.len(),
                    ids.len()
                ),
            }
        }
        ids.iter()
            .map(|id| got.remove(&id.to_string()).expect("reply"))
            .collect()
    }

    /// Waits for the next event line and keeps it in `events`. (Used by the benchmark.)
    #[allow(dead_code)]
    pub fn pump(&mut self, timeout: Duration) {
        match self.lines.recv_timeout(timeout) {
            Ok(line) if line.get("event").is_some() => self.events.push(line),
            Ok(line) => panic!("an unexpected reply: {line}"),
            Err(e) => panic!("no event within {timeout:?}: {e}"),
        }
    }

    /// Sends a command and returns its whole reply.
    pub fn call(&mut self, cmd: &str, args: Value) -> Value {
        let id = self.send(cmd, args);
        self.reply_to(&id)
    }

    /// Sends a command without waiting; its reply comes to `reply_to(&id)`.
    pub fn send(&mut self, cmd: &str, args: Value) -> Value {
        self.next_id += 1;
        let id = json!(self.next_id);
        self.send_line(&json!({"id": id, "cmd": cmd, "args": args}).to_string());
        id
    }

    /// Polls `session.invite` until its link goes through a relay (and, with `code`, the
    /// short code is registered); returns the invite.
    #[allow(dead_code)]
    pub fn relayed_invite(&mut self, code: bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let reply = self.call("session.invite", json!(null));
            let invite = &reply["result"];
            let relayed = invite["url"].as_str().is_some_and(|u| u.contains("relay="));
            if reply["ok"] == json!(true) && relayed && (!code || invite["short_code"].is_string())
            {
                return invite.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no invite through a relay: {reply}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The link of `relayed_invite`.
    #[allow(dead_code)]
    pub fn relayed_invite_url(&mut self) -> String {
        self.relayed_invite(false)["url"]
            .as_str()
            .expect("url")
            .to_owned()
    }

    /// Sends a command that must succeed and returns its result.
    pub fn ok(&mut self, cmd: &str, args: Value) -> Value {
        let reply = self.call(cmd, args);
        assert_eq!(reply["ok"], json!(true), "{cmd} failed: {reply}");
        reply["result"].clone()
    }

    /// Sends a command that must fail and returns its error code.
    pub fn error_code(&mut self, cmd: &str, args: Value) -> String {
        let reply = self.call(cmd, args);
        assert_eq!(reply["ok"], json!(false), "{cmd} should fail: {reply}");
        reply["error"]["code"].as_str().expect("code").to_owned()
    }

    /// Waits for the process to end by itself.
    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        wait_for_exit(&mut self.child, "whatnext")
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Hands stdin to the caller, to write from another thread.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin open")
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The titles in a `session.state` result's queue, in play order (empty without a queue).
pub fn titles(state: &Value) -> Vec<String> {
    state["queue"]
        .as_array()
        .map(|q| {
            q.iter()
                .map(|t| t["title"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `session.state` until `check` holds, returning the state and how long it took.
pub fn wait_state(
    app: &mut Headless,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    wait_state_for(app, what, TIMEOUT, check)
}

pub fn wait_state_for(
    app: &mut Headless,
    what: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let state = app.ok("session.state", json!(null));
        if check(&state) {
            return (state, started.elapsed());
        }
        assert!(started.elapsed() < limit, "never saw {what}: {state}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The app in a real window under Xvfb (1280×720), whose log a test reads. Dropping it ends
/// the app itself, and with it xvfb-run and its X server.
#[allow(dead_code)]
pub struct AppWindow {
    child: Child,
    log: Receiver<String>,
}

#[allow(dead_code)]
impl AppWindow {
    /// The party screen: `whatnext --kiosk --data-dir <data_dir> <args>` with `RUST_LOG=<log>`.
    pub fn party_screen(data_dir: &Path, args: &[&str], log: &str) -> Self {
        Self::start(data_dir, &[&["--kiosk"], args].concat(), log, &[])
    }

    /// `whatnext --data-dir <data_dir> <args>` with `RUST_LOG=<log>` and `env`.
    pub fn start(data_dir: &Path, args: &[&str], log: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x720x24"])
            .arg(binary())
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", log)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("xvfb-run is needed for this test");
        let log = read_lines(child.stderr.take().expect("stderr"), |line| line);
        Self { child, log }
    }

    /// Waits (up to twice `TIMEOUT`: a window starts slowly on a CPU renderer) for a log line
    /// for which `found` holds, and returns it.
    pub fn wait_for(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT * 2;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if found(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("the window never showed {what}: {e}"),
            }
        }
    }
}

impl Drop for AppWindow {
    fn drop(&mut self) {
        // End the app itself (xvfb-run's child named whatnext); xvfb-run then stops its X
        // server and exits. Killing xvfb-run instead would leave both behind.
        let _ = Command::new("pkill")
            .args([
                "-TERM",
                "-P",
                &self.child.id().to_string(),
                "-x",
                "whatnext",
            ])
            .status();
        wait_for_exit(&mut self.child, "xvfb-run, after the app ended,");
    }
}

/// Waits for a control event named `name` whose data passes `check`; returns its data.
pub fn wait_event(app: &mut Headless, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(found) = app
            .events
            .iter()
            .find(|e| e["event"] == json!(name) && check(&e["data"]))
        {
            return found["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {name} event: {:?}",
            app.events
        );
        // A query lets events that arrived meanwhile be read.
        app.ok("identity", json!(null));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// This app's peer id (`identity`).
pub fn peer_id(app: &mut Headless) -> String {
    app.ok("identity", json!(null))["peer_id"]
        .as_str()
        .expect("peer id")
        .to_owned()
}

/// The header of a mono 16-bit PCM WAV at `rate` Hz: `data_len` bytes of samples follow it,
/// then `extra` bytes of further chunks.
pub fn wav_header(rate: u32, data_len: u32, extra: u32) -> Vec<u8> {
    let mut wav = Vec::with_capacity(44);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(4 + 24 + 8 + data_len + extra).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav
}

/// Writes a WAV of noise `ms` long (8 kHz mono 16-bit, 16 bytes a millisecond) from `seed`,
/// so every file differs and no two of its leaves are alike; returns its bytes.
#[allow(dead_code)]
pub fn write_noise_wav(path: &Path, ms: u64, seed: u64) -> Vec<u8> {
    let data_len = (ms * 16) as u32;
    let mut wav = wav_header(8_000, data_len, 0);
    let mut x = seed * 2 + 1;
    wav.extend((0..data_len).map(|_| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 56) as u8
    }));
    std::fs::write(path, &wav).expect("write wav");
    wav
}
