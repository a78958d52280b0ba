//! `--headless`: the full app without a window, driven by the control protocol.

use std::time::Duration;

use bevy::app::{AppExit, PluginsState, ScheduleRunnerPlugin};
use bevy::ecs::schedule::SingleThreadedExecutor;
use bevy::prelude::*;
use whatnext_control::{ControlIo, ControlPlugin};
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

/// Runs the app headless until `quit` or the end of standard input, sleeping between frames
/// until something wakes it (or [`IDLE_WAIT`] passes).
pub fn run(
    storage: StoragePlugin,
    network: Option<NetConfig>,
    demo: bool,
    extend: crate::Extend,
) -> AppExit {
    // Producers wake the loop through this channel instead of it polling at a fixed tick.
    let (wake_tx, wake_rx) = crossbeam_channel::bounded::<()>(1);
    let waker = AppWaker::new(move || {
        let _ = wake_tx.try_send(());
    });
    let (io, stdio) = ControlIo::stdio({
        let waker = waker.clone();
        move || waker.wake()
    });
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
            let _ = wake_rx.recv_timeout(IDLE_WAIT);
        }
    });
    let exit = app.run();
    // The app (and its end of the output channel) is gone: let the writer drain.
    drop(app);
    stdio.finish();
    exit
}
