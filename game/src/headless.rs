//! `--headless`: the full app without a window, driven by the control protocol.

use std::time::Duration;

use bevy::app::{AppExit, PluginsState, ScheduleRunnerPlugin};
use bevy::ecs::schedule::SingleThreadedExecutor;
use bevy::prelude::*;
use whatnext_control::{ControlIo, ControlPlugin, StdioThreads};
use whatnext_core::prelude::AppWaker;
use whatnext_network::NetConfig;
use whatnext_storage::StoragePlugin;

/// The longest the loop sleeps with nothing to do; time-driven work (a track ending) still
/// happens within this.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Runs every schedule's systems one after another on the loop's thread. A headless frame's
/// systems are small; handing them to the task pool and back costs more than they do, and
/// each frame is on the path of every intent (see `docs/decisions/wake-up-path.md`).
fn single_threaded(app: &mut App) {
    let mut schedules = app.world_mut().resource_mut::<Schedules>();
    for (_, schedule) in schedules.iter_mut() {
        schedule.set_executor(SingleThreadedExecutor::new());
    }
}

/// The loop's waker, the loop's sleep until it is woken (or the time passes), and the
/// control protocol on stdin and stdout.
///
/// On Linux the loop itself waits on stdin and on an eventfd its waker writes to: a request
/// wakes it directly, instead of waking a reader thread that then wakes the loop.
#[cfg(target_os = "linux")]
fn wake_and_stdio() -> (AppWaker, impl FnMut(Duration), ControlIo, StdioThreads) {
    use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};
    let (io, mut stdin, stdio) = ControlIo::stdio();
    let wake_fd = match eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK) {
        Ok(fd) => Some(std::sync::Arc::new(fd)),
        Err(error) => {
            // Without it the loop still runs, every IDLE_WAIT at worst.
            tracing::error!("cannot make the loop's eventfd ({error}); it will wake late");
            None
        }
    };
    let waker = AppWaker::new({
        let wake_fd = wake_fd.clone();
        move || {
            if let Some(fd) = &wake_fd {
                let _ = rustix::io::write(&**fd, &1u64.to_ne_bytes());
            }
        }
    });
    let mut stdin_open = true;
    let sleep = move |timeout: Duration| {
        let timeout = Timespec::try_from(timeout).ok();
        let mut fds = Vec::with_capacity(2);
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        if let Some(fd) = &wake_fd {
            fds.push(PollFd::new(&**fd, PollFlags::IN));
        }
        if poll(&mut fds, timeout.as_ref()).is_err() {
            return; // interrupted: the loop runs a frame and sleeps again
        }
        let stdin_ready = stdin_open && !fds[0].revents().is_empty();
        drop(fds);
        if let Some(fd) = &wake_fd {
            let mut count = [0u8; 8];
            let _ = rustix::io::read(&**fd, &mut count);
        }
        // Readable, closed or broken: reading says which.
        if stdin_ready {
            stdin_open = stdin.read_ready();
        }
    };
    (waker, sleep, io, stdio)
}

/// The loop's waker, the loop's sleep, and the control protocol on stdin (read on a thread
/// that wakes the loop) and stdout.
#[cfg(not(target_os = "linux"))]
fn wake_and_stdio() -> (AppWaker, impl FnMut(Duration), ControlIo, StdioThreads) {
    // Producers wake the loop through this channel instead of it polling at a fixed tick.
    let (wake_tx, wake_rx) = crossbeam_channel::bounded::<()>(1);
    let waker = AppWaker::new(move || {
        let _ = wake_tx.try_send(());
    });
    let (io, stdio) = ControlIo::stdio({
        let waker = waker.clone();
        move || waker.wake()
    });
    let sleep = move |timeout| {
        let _ = wake_rx.recv_timeout(timeout);
    };
    (waker, sleep, io, stdio)
}

/// Runs the app headless until `quit` or the end of standard input, sleeping between frames
/// until something wakes it (or [`IDLE_WAIT`] passes).
pub fn run(
    storage: StoragePlugin,
    network: Option<NetConfig>,
    demo: bool,
    extend: crate::Extend,
) -> AppExit {
    let (waker, mut sleep, io, stdio) = wake_and_stdio();
    let mut app = App::new();
    // The waker goes in first: the network plugin hands it to its thread.
    app.add_plugins(MinimalPlugins.build().disable::<ScheduleRunnerPlugin>())
        .insert_resource(waker);
    crate::add_core_plugins(&mut app, storage, network, demo, extend);
    app.add_plugins(ControlPlugin::new(io));
    app.set_runner(move |mut app: App| {
        if app.plugins_state() != PluginsState::Cleaned {
            while app.plugins_state() == PluginsState::Adding {
                bevy::tasks::tick_global_task_pools_on_main_thread();
            }
            app.finish();
            app.cleanup();
        }
        single_threaded(&mut app);
        loop {
            app.update();
            if let Some(exit) = app.should_exit() {
                return exit;
            }
            sleep(IDLE_WAIT);
        }
    });
    let exit = app.run();
    // The app (and its end of the output channel) is gone: let the writer drain.
    drop(app);
    stdio.finish();
    exit
}
