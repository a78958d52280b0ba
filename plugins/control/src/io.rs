//! Where control lines come from and go to: the process's stdin/stdout, or channels in tests.
//! No Bevy system waits on a pipe: stdin is read only when a poll says it holds something
//! (on another thread where there is no poll), and a write that would wait goes to a thread.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, unbounded};

/// One thing read from the control input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlInput {
    /// One request line, without its line ending.
    Line(String),
    /// A line over [`MAX_LINE_BYTES`], skipped unread: it gets a `too_large` error.
    TooLong,
    /// The input closed: shut down as `quit` does.
    Closed,
}

/// The longest request line read, in bytes: far above any real request (text fields are
/// capped at 200 characters), and low enough that an endless line cannot fill the memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The app's ends of the control channels.
pub struct ControlIo {
    /// Request lines, then `Closed` when the input ends.
    pub input: Receiver<ControlInput>,
    /// Reply and event lines, one JSON object each, without line endings.
    pub output: ControlOutput,
}

/// Where the app's reply and event lines go, in the order they are sent.
pub struct ControlOutput(Sink);

enum Sink {
    /// A test's channel: it gets each line as a string.
    Lines(Sender<String>),
    /// Standard output. A line is written right away from the sending thread when nothing
    /// is waiting before it and the write cannot wait (stdout is a pipe with room for it);
    /// otherwise its bytes go to the writer thread, which may wait. Handing every line to the
    /// thread cost each event a thread wake-up (about 0.15 ms here) on the path of every
    /// intent to another guest (`docs/decisions/wake-up-path.md`).
    Stdout {
        /// Writes what stdout takes without waiting (`write_without_waiting`).
        write_now: fn(&[u8]) -> DirectWrite,
        to_writer: Sender<Vec<u8>>,
        /// Chunks handed to the writer thread and not yet written: a line may be written
        /// directly only at zero, so lines never overtake each other.
        queued: Arc<AtomicUsize>,
        /// Cleared for good when stdout does not take writes that cannot wait (a terminal, an
        /// older kernel), so those cost no failed system call each.
        direct: AtomicBool,
    },
}

/// The output has closed: nobody is left to read the line.
#[derive(Debug)]
pub struct OutputClosed;

impl ControlOutput {
    /// Sends one line (without its line ending).
    pub fn send(&self, line: String) -> Result<(), OutputClosed> {
        match &self.0 {
            Sink::Lines(lines) => lines.send(line).map_err(|_| OutputClosed),
            Sink::Stdout {
                write_now,
                to_writer,
                queued,
                direct,
            } => {
                let mut bytes = line.into_bytes();
                bytes.push(b'\n');
                let mut written = 0;
                if queued.load(Ordering::Acquire) == 0 && direct.load(Ordering::Relaxed) {
                    match write_now(&bytes) {
                        DirectWrite::Wrote(n) if n == bytes.len() => return Ok(()),
                        DirectWrite::Wrote(n) => written = n,
                        DirectWrite::WouldWait => {}
                        DirectWrite::Unsupported => direct.store(false, Ordering::Relaxed),
                        // The writer thread meets the same error and reports the output closed.
                        DirectWrite::Failed => {}
                    }
                }
                queued.fetch_add(1, Ordering::AcqRel);
                bytes.drain(..written);
                to_writer.send(bytes).map_err(|_| OutputClosed)
            }
        }
    }
}

/// What a write that may not wait did.
// Elsewhere than on Linux stdout never takes such a write.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
enum DirectWrite {
    Wrote(usize),
    WouldWait,
    Unsupported,
    Failed,
}

/// Writes to stdout only what it takes without waiting (`RWF_NOWAIT`). A pipe takes a write of
/// up to `PIPE_BUF` (4 KiB) whole or not at all.
#[cfg(target_os = "linux")]
fn write_without_waiting(bytes: &[u8]) -> DirectWrite {
    use rustix::io::{Errno, ReadWriteFlags, pwritev2};
    // `u64::MAX`: at stdout's current position, as `write` does (a pipe has none).
    match pwritev2(
        std::io::stdout(),
        &[std::io::IoSlice::new(bytes)],
        u64::MAX,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(n) => DirectWrite::Wrote(n),
        Err(Errno::AGAIN) | Err(Errno::INTR) => DirectWrite::WouldWait,
        Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) | Err(Errno::INVAL) | Err(Errno::SPIPE) => {
            DirectWrite::Unsupported
        }
        Err(_) => DirectWrite::Failed,
    }
}

#[cfg(not(target_os = "linux"))]
fn write_without_waiting(_: &[u8]) -> DirectWrite {
    DirectWrite::Unsupported
}

/// Standard output and its writer thread.
fn stdout_output() -> (ControlOutput, StdioThreads) {
    output_with_writer(write_without_waiting, std::io::stdout())
}

/// An output that writes with `write_now` when it can, else through a thread writing to `out`.
fn output_with_writer(
    write_now: fn(&[u8]) -> DirectWrite,
    mut out: impl Write + Send + 'static,
) -> (ControlOutput, StdioThreads) {
    let (to_writer, chunks) = unbounded::<Vec<u8>>();
    let queued = Arc::new(AtomicUsize::new(0));
    let writer_queued = queued.clone();
    let writer = std::thread::Builder::new()
        .name("control-stdout".into())
        .spawn(move || {
            for chunk in chunks {
                // A closed stdout means nobody listens any more; stop writing.
                if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
                    break;
                }
                writer_queued.fetch_sub(1, Ordering::AcqRel);
            }
        })
        .unwrap_or_else(|e| {
            eprintln!("whatnext: cannot start the control output thread: {e}");
            std::thread::spawn(|| {})
        });
    let output = ControlOutput(Sink::Stdout {
        write_now,
        to_writer,
        queued,
        direct: AtomicBool::new(true),
    });
    (output, StdioThreads { writer })
}

/// Standard input, read by the headless loop's own thread when its poll says stdin is
/// readable: a request to a sleeping app then costs one wake-up, not two (a reader thread's,
/// then the loop's), on the path of every intent (`docs/decisions/wake-up-path.md`).
#[cfg(target_os = "linux")]
pub struct StdinReader {
    stdin: std::io::Stdin,
    lines: LineSplitter,
    buffer: Vec<u8>,
}

#[cfg(target_os = "linux")]
impl StdinReader {
    /// Reads once what stdin holds (a poll said it is readable, so this does not wait) and
    /// hands on each complete line. Returns false once the input has ended, after handing on
    /// its last line and `Closed`.
    pub fn read_ready(&mut self) -> bool {
        use rustix::io::Errno;
        match rustix::io::read(&self.stdin, &mut self.buffer[..]) {
            Ok(0) => {
                self.lines.end();
                false
            }
            Ok(n) => {
                self.lines.push(&self.buffer[..n]);
                true
            }
            Err(Errno::INTR) | Err(Errno::AGAIN) => true,
            Err(_) => {
                self.lines.end();
                false
            }
        }
    }
}

/// Standard input, to poll.
#[cfg(target_os = "linux")]
impl std::os::fd::AsFd for StdinReader {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stdin.as_fd()
    }
}

/// Cuts bytes read in any pieces into lines as `BufRead::lines` does (without their `\n` or
/// `\r\n`) and hands each on as input.
/// A line over [`MAX_LINE_BYTES`] is skipped to its end and handed on as `TooLong`.
struct LineSplitter {
    input: Sender<ControlInput>,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The line being read is over the cap: its bytes are dropped until its end.
    skipping: bool,
}

impl LineSplitter {
    fn new(input: Sender<ControlInput>) -> Self {
        Self {
            input,
            partial: Vec::new(),
            skipping: false,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            if self.skipping {
                self.skipping = false;
                let _ = self.input.send(ControlInput::TooLong);
            } else if self.partial.is_empty() {
                self.hand_on(&bytes[..end]);
            } else {
                self.partial.extend_from_slice(&bytes[..end]);
                let line = std::mem::take(&mut self.partial);
                self.hand_on(&line);
            }
            bytes = &bytes[end + 1..];
        }
        if !self.skipping {
            self.partial.extend_from_slice(bytes);
            self.skip_if_too_long();
        }
    }

    fn skip_if_too_long(&mut self) {
        if self.partial.len() > MAX_LINE_BYTES {
            self.partial = Vec::new();
            self.skipping = true;
        }
    }

    /// The input ended: a last line without a line ending is still a request.
    fn end(&mut self) {
        if self.skipping {
            let _ = self.input.send(ControlInput::TooLong);
        } else if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.hand_on(&line);
        }
        let _ = self.input.send(ControlInput::Closed);
    }

    fn hand_on(&self, line: &[u8]) {
        if line.len() > MAX_LINE_BYTES {
            let _ = self.input.send(ControlInput::TooLong);
            return;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = match std::str::from_utf8(line) {
            Ok(text) => text.to_owned(),
            // Bytes that are not UTF-8 still deserve a bad_request reply.
            Err(_) => String::from("\u{FFFD}"),
        };
        let _ = self.input.send(ControlInput::Line(text));
    }
}

/// The writer thread of [`ControlIo::stdio`]. Join them after the app ends, so
/// every reply is written before the process exits.
pub struct StdioThreads {
    writer: JoinHandle<()>,
}

impl StdioThreads {
    /// Waits until every line sent to the output is written. The app must be dropped first,
    /// so the output channel is closed.
    pub fn finish(self) {
        if self.writer.join().is_err() {
            eprintln!("whatnext: the control output thread panicked");
        }
    }
}

impl ControlIo {
    /// Writes stdout (see [`ControlOutput`]), and reads stdin on a thread that calls `wake`
    /// for every input line.
    #[cfg(not(target_os = "linux"))]
    pub fn stdio(wake: impl Fn() + Send + 'static) -> (ControlIo, StdioThreads) {
        let (in_tx, in_rx) = unbounded();
        std::thread::Builder::new()
            .name("control-stdin".into())
            .spawn(move || {
                use std::io::Read;
                let mut lines = LineSplitter::new(in_tx);
                let mut buffer = vec![0; 64 * 1024];
                let mut stdin = std::io::stdin();
                loop {
                    match stdin.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(n) => lines.push(&buffer[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                    wake();
                }
                lines.end();
                wake();
            })
            .map_err(|e| eprintln!("whatnext: cannot start the control input thread: {e}"))
            .ok();
        let (output, threads) = stdout_output();
        (
            ControlIo {
                input: in_rx,
                output,
            },
            threads,
        )
    }

    /// Writes stdout (see [`ControlOutput`]); stdin is read by the caller's loop through the
    /// returned [`StdinReader`] when a poll says it is readable.
    #[cfg(target_os = "linux")]
    pub fn stdio() -> (ControlIo, StdinReader, StdioThreads) {
        let (in_tx, in_rx) = unbounded();
        let (output, threads) = stdout_output();
        (
            ControlIo {
                input: in_rx,
                output,
            },
            StdinReader {
                stdin: std::io::stdin(),
                lines: LineSplitter::new(in_tx),
                buffer: vec![0; 64 * 1024],
            },
            threads,
        )
    }

    /// In-memory channels, for tests: returns the app's ends and the test's ends.
    pub fn channels() -> (ControlIo, Sender<ControlInput>, Receiver<String>) {
        let (in_tx, in_rx) = unbounded();
        let (out_tx, out_rx) = unbounded();
        (
            ControlIo {
                input: in_rx,
                output: ControlOutput(Sink::Lines(out_tx)),
            },
            in_tx,
            out_rx,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// What reached "stdout", in order, from either path; and whether a direct write finds
    /// the pipe full.
    static WRITTEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static PIPE_FULL: AtomicBool = AtomicBool::new(true);

    fn write_now(bytes: &[u8]) -> DirectWrite {
        if PIPE_FULL.load(Ordering::SeqCst) {
            return DirectWrite::WouldWait;
        }
        let line = String::from_utf8_lossy(bytes);
        WRITTEN.lock().expect("log").push(format!("direct: {line}"));
        DirectWrite::Wrote(bytes.len())
    }

    /// A writer thread's stdout that takes nothing until the test opens its gate.
    struct GatedWriter(Receiver<()>, Vec<u8>);

    impl Write for GatedWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.1.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            let _ = self.0.recv();
            let chunk = std::mem::take(&mut self.1);
            let line = String::from_utf8_lossy(&chunk);
            WRITTEN.lock().expect("log").push(format!("thread: {line}"));
            Ok(())
        }
    }

    #[test]
    fn a_line_never_overtakes_one_still_waiting_for_the_writer_thread() {
        let (gate, gated) = unbounded();
        let (output, threads) = output_with_writer(write_now, GatedWriter(gated, Vec::new()));
        // The pipe is full: the first line goes to the writer thread, which is stuck.
        output.send("first".into()).expect("send");
        // The pipe has room again, but the first line has not been written yet.
        PIPE_FULL.store(false, Ordering::SeqCst);
        output.send("second".into()).expect("send");
        drop(gate);
        // Once the writer thread has written both, lines go straight out again.
        let Sink::Stdout { queued, .. } = &output.0 else {
            unreachable!("an output with a writer thread")
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while queued.load(Ordering::Acquire) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never caught up"
            );
            std::thread::yield_now();
        }
        output.send("third".into()).expect("send");
        drop(output);
        threads.finish();
        assert_eq!(
            *WRITTEN.lock().expect("log"),
            ["thread: first\n", "thread: second\n", "direct: third\n"]
        );
    }

    fn split(pieces: &[&[u8]], end: bool) -> Vec<ControlInput> {
        let (input, lines) = unbounded();
        let mut splitter = LineSplitter::new(input);
        for piece in pieces {
            splitter.push(piece);
        }
        if end {
            splitter.end();
        }
        drop(splitter);
        lines.iter().collect()
    }

    fn line(text: &str) -> ControlInput {
        ControlInput::Line(text.to_owned())
    }

    #[test]
    fn lines_cut_anywhere_by_reads_come_out_whole_and_in_order() {
        let text = b"{\"id\":1}\n{\"id\":2}\r\n\n{\"id\":3}\n";
        let whole = split(&[text], false);
        assert_eq!(
            whole,
            [
                line("{\"id\":1}"),
                line("{\"id\":2}"),
                line(""),
                line("{\"id\":3}")
            ]
        );
        for cut in 0..text.len() {
            for second in cut..text.len() {
                let pieces = [&text[..cut], &text[cut..second], &text[second..]];
                assert_eq!(split(&pieces, false), whole, "cut at {cut} and {second}");
            }
        }
    }

    #[test]
    fn the_end_of_input_hands_on_an_unfinished_last_line_then_closed() {
        assert_eq!(
            split(&[b"{\"id\":1}\n{\"id\""], false),
            [line("{\"id\":1}")]
        );
        assert_eq!(
            split(&[b"{\"id\":1}\n{\"id\"", b":2}"], true),
            [line("{\"id\":1}"), line("{\"id\":2}"), ControlInput::Closed]
        );
        assert_eq!(split(&[b"a\n"], true), [line("a"), ControlInput::Closed]);
    }

    #[test]
    fn a_line_over_the_cap_is_skipped_as_too_long_and_the_next_line_still_comes() {
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        let at_cap = vec![b'y'; MAX_LINE_BYTES];
        // Whole in one read, and arriving in pieces that are each under the cap.
        assert_eq!(
            split(&[&long, b"\nok\n"], false),
            [ControlInput::TooLong, line("ok")]
        );
        let pieces: Vec<&[u8]> = long.chunks(4096).chain([&b"\nok\n"[..]]).collect();
        assert_eq!(split(&pieces, false), [ControlInput::TooLong, line("ok")]);
        // An endless line ending with the input.
        assert_eq!(
            split(&[&long, &long], true),
            [ControlInput::TooLong, ControlInput::Closed]
        );
        // A line at the cap is still read.
        let mut exact = at_cap.clone();
        exact.push(b'\n');
        let got = split(&[&exact[..10], &exact[10..]], false);
        assert_eq!(got, [line(&String::from_utf8_lossy(&at_cap))]);
    }

    #[test]
    fn a_line_that_is_not_utf8_becomes_a_replacement_character_and_the_next_line_still_comes() {
        assert_eq!(
            split(&[b"\xff\xfe\n", b"ok\n"], false),
            [line("\u{FFFD}"), line("ok")]
        );
    }
}
