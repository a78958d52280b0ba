//! Where control lines come from and go to: the process's stdin/stdout, or channels in tests.
//! Reading and writing happen on their own threads, so no Bevy system waits on a pipe.

use std::io::{BufRead, Write};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, unbounded};

/// One thing read from the control input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlInput {
    /// One request line, without its line ending.
    Line(String),
    /// The input closed: shut down as `quit` does.
    Closed,
}

/// The app's ends of the control channels.
pub struct ControlIo {
    /// Request lines, then `Closed` when the input ends.
    pub input: Receiver<ControlInput>,
    /// Reply and event lines, one JSON object each, without line endings.
    pub output: Sender<String>,
}

/// The reader and writer threads of [`ControlIo::stdio`]. Join them after the app ends, so
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
    /// Reads stdin and writes stdout on two threads. `wake` is called for every input line.
    pub fn stdio(wake: impl Fn() + Send + 'static) -> (ControlIo, StdioThreads) {
        let (in_tx, in_rx) = unbounded();
        let (out_tx, out_rx) = unbounded::<String>();
        std::thread::Builder::new()
            .name("control-stdin".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                for line in stdin.lock().lines() {
                    let input = match line {
                        Ok(line) => ControlInput::Line(line),
                        // Bytes that are not UTF-8 still deserve a bad_request reply.
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                            ControlInput::Line(String::from("\u{FFFD}"))
                        }
                        Err(_) => break,
                    };
                    if in_tx.send(input).is_err() {
                        return;
                    }
                    wake();
                }
                let _ = in_tx.send(ControlInput::Closed);
                wake();
            })
            .map_err(|e| eprintln!("whatnext: cannot start the control input thread: {e}"))
            .ok();
        let writer = std::thread::Builder::new()
            .name("control-stdout".into())
            .spawn(move || {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                for line in out_rx {
                    // A closed stdout means nobody listens any more; stop writing.
                    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                        break;
                    }
                }
            })
            .unwrap_or_else(|e| {
                eprintln!("whatnext: cannot start the control output thread: {e}");
                std::thread::spawn(|| {})
            });
        (
            ControlIo {
                input: in_rx,
                output: out_tx,
            },
            StdioThreads { writer },
        )
    }

    /// In-memory channels, for tests: returns the app's ends and the test's ends.
    pub fn channels() -> (ControlIo, Sender<ControlInput>, Receiver<String>) {
        let (in_tx, in_rx) = unbounded();
        let (out_tx, out_rx) = unbounded();
        (
            ControlIo {
                input: in_rx,
                output: out_tx,
            },
            in_tx,
            out_rx,
        )
    }
}
