//! Waking the app loop. A frame loop that only polls adds a frame of latency to every input,
//! so producers outside Bevy (stdin, the network thread) call the waker when they have work.

use std::sync::Arc;

use bevy::prelude::*;

/// Wakes the app's loop from another thread. Installed by the runner: a channel in headless
/// mode, the winit event-loop proxy in windowed mode.
#[derive(Resource, Clone)]
pub struct AppWaker(Arc<dyn Fn() + Send + Sync>);

impl AppWaker {
    /// A waker that calls `wake`.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(wake))
    }

    /// A waker that does nothing, for apps that run frames back to back anyway.
    pub fn none() -> Self {
        Self::new(|| {})
    }

    /// Wakes the app's loop.
    pub fn wake(&self) {
        (self.0)();
    }
}
