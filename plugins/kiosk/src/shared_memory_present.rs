//! On a CPU renderer under X11, the party screen reaches its window through an X shared-memory
//! segment (MIT-SHM), from a thread of its own, instead of through the Vulkan swapchain.
//!
//! Why: Mesa's software swapchain (lavapipe, Mesa 22.3 in Debian 12) has no shared memory
//! without DRI3, which Xvfb and VNC-style X servers lack. It sends every frame to the X server
//! as one 8 MB `PutImage` over the socket, on the render thread, after waiting for the frame
//! to finish: at 1920×1080 the render thread spent 8–10 ms a frame on the X server alone, and
//! no frame could start meanwhile (`docs/decisions/party-screen-presentation.md`).
//!
//! Here the kiosk camera draws into an image; the frame is copied into a mappable buffer, and
//! the presenter thread copies it into the segment and asks the X server to show it, while the
//! next frame is drawn. `WHATNEXT_PRESENT=swapchain` keeps the swapchain.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::asset::RenderAssetUsages;
use bevy::camera::{NormalizedRenderTarget, RenderTarget};
use bevy::prelude::*;
use bevy::render::camera::ExtractedCamera;
use bevy::render::extract_resource::{ExtractResource, ExtractResourcePlugin};
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{
    Buffer, BufferDescriptor, BufferUsages, Extent3d, MapMode, PollType, TexelCopyBufferInfo,
    TexelCopyBufferLayout, TextureDimension, TextureFormat, TextureUsages,
};
use bevy::render::renderer::{RenderAdapterInfo, RenderContext, RenderDevice, ViewQuery};
use bevy::render::texture::GpuImage;
use bevy::render::view::window::{ExtractedWindows, prepare_windows};
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy::window::{PrimaryWindow, RawHandleWrapper};
use crossbeam_channel::{Receiver, Sender};

use crate::straight_to_screen::{PartyScreenPasses, StraightToScreen, draw_party_screen};
use x11_window::X11Window;

/// One buffer: the next frame is drawn while the presenter reads it, and only its copy out
/// waits. A second let that copy start sooner, for 8 MiB more resident and about 0.4 ms a
/// frame (`docs/decisions/party-screen-presentation.md`).
const STAGING_BUFFERS: usize = 1;

/// How long a screenshot waits for the X server to give the window the frame's size.
const CAPTURE_WAIT_FRAMES: u32 = 300;

/// Set when the party screen presents through shared memory: the image its camera draws into,
/// and the way to the presenter thread.
#[derive(Resource, Clone, ExtractResource)]
pub struct SharedMemoryPresent(Arc<Presenter>);

struct Presenter {
    image: Handle<Image>,
    /// The image's size (the main world keeps no copy of a render-only image to ask).
    size: Mutex<UVec2>,
    /// Buffers the render thread may copy a frame into.
    free: Receiver<Staged>,
    free_sender: Sender<Staged>,
    created: AtomicUsize,
    /// Frames copied in this frame's commands, sent on once those are submitted.
    recorded: Mutex<Vec<Staged>>,
    submitted: Sender<Staged>,
    /// A screenshot asked for: the next frame on screen, read back from the X server, and how
    /// many frames it has waited for the window to have the frame's size.
    capture: Mutex<Option<(Sender<Result<Image, String>>, u32)>>,
    /// Set when the presenter thread stopped (the X server refused a frame): the camera goes
    /// back to the window's swapchain.
    stopped: AtomicBool,
}

/// A mappable buffer and the frame it holds.
struct Staged {
    buffer: Buffer,
    width: u32,
    height: u32,
    row_bytes: u32,
}

impl SharedMemoryPresent {
    /// Reads the window back from the X server after the next frame reaches it: what the
    /// screen really shows, for `--screenshot`.
    pub fn capture_next_frame(&self) -> Receiver<Result<Image, String>> {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        if let Ok(mut capture) = self.0.capture.lock() {
            *capture = Some((sender, 0));
        }
        receiver
    }
}

/// Chooses the party screen's presentation once the renderer and the window exist, and
/// keeps the image at the window's size.
pub struct SharedMemoryPresentPlugin;

impl Plugin for SharedMemoryPresentPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(ExtractResourcePlugin::<SharedMemoryPresent>::default())
            .add_systems(Update, (choose_presentation, follow_the_window).chain());
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            return;
        };
        render_app
            .add_systems(PartyScreenPasses, copy_frame_out.after(draw_party_screen))
            .add_systems(Render, send_submitted_frames.in_set(RenderSystems::Cleanup))
            .add_systems(Render, skip_the_initial_present.before(prepare_windows));
    }
}

/// Nothing draws into the window's swapchain on this path. Bevy's one initial present
/// (Wayland needs it; this path is X11 only) would clear a swapchain image and keep its
/// 8 MiB resident for nothing.
fn skip_the_initial_present(
    present: Option<Res<SharedMemoryPresent>>,
    mut windows: ResMut<ExtractedWindows>,
) {
    if present.is_some() {
        for window in windows.values_mut() {
            window.needs_initial_present = false;
        }
    }
}

/// Why the swapchain stays, or `None` to present through shared memory.
fn swapchain_reason(adapter: &RenderAdapterInfo) -> Option<String> {
    if adapter.device_type != wgpu_types::DeviceType::Cpu {
        return Some(format!("{} is not a CPU renderer", adapter.name));
    }
    match std::env::var("WHATNEXT_PRESENT").as_deref() {
        Ok("swapchain") => Some("WHATNEXT_PRESENT=swapchain".into()),
        Ok("shared-memory") | Err(_) => None,
        Ok(other) => {
            warn!(
                value = other,
                "WHATNEXT_PRESENT is `swapchain` or `shared-memory`; ignored"
            );
            None
        }
    }
}

fn choose_presentation(
    mut decided: Local<bool>,
    adapter: Option<Res<RenderAdapterInfo>>,
    device: Option<Res<RenderDevice>>,
    windows: Query<(&Window, &RawHandleWrapper), With<PrimaryWindow>>,
    mut cameras: Query<(Entity, &mut Camera), With<StraightToScreen>>,
    mut images: ResMut<Assets<Image>>,
    mut commands: Commands,
) {
    if *decided {
        return;
    }
    let (Some(adapter), Some(device), Ok((window, handle)), Ok(camera)) =
        (adapter, device, windows.single(), cameras.single_mut())
    else {
        return; // not yet: the renderer, the window or the camera is still to come
    };
    *decided = true;
    let (camera, mut active) = camera;
    // Whichever way it presents, the party screen draws from now on.
    active.is_active = true;
    if let Some(reason) = swapchain_reason(&adapter) {
        info!(%reason, "the party screen presents through the swapchain");
        return;
    }
    let window_id = match handle.get_window_handle() {
        raw_window_handle::RawWindowHandle::Xlib(h) => u32::try_from(h.window).unwrap_or(0),
        raw_window_handle::RawWindowHandle::Xcb(h) => h.window.get(),
        _ => 0,
    };
    if window_id == 0 {
        info!(
            reason = "not an X11 window",
            "the party screen presents through the swapchain"
        );
        return;
    }
    let size = UVec2::new(window.physical_width(), window.physical_height()).max(UVec2::ONE);
    let x11 = match X11Window::open(window_id, size) {
        Ok(x11) => x11,
        Err(reason) => {
            info!(%reason, "the party screen presents through the swapchain");
            return;
        }
    };
    let image = images.add(frame_image(size));
    let (presenter, to_present) = Presenter::new(image.clone(), size);
    let presenter = Arc::new(presenter);
    let device = device.clone();
    let thread_presenter = presenter.clone();
    let spawned = std::thread::Builder::new()
        .name("party screen presenter".into())
        .spawn(move || present_frames(&device, &thread_presenter, &to_present, x11));
    if let Err(error) = spawned {
        warn!(%error, "the party screen presents through the swapchain: no presenter thread");
        return;
    }
    info!(
        width = size.x,
        height = size.y,
        "the party screen presents through X shared memory (a CPU renderer)"
    );
    commands
        .entity(camera)
        .insert(RenderTarget::Image(image.into()));
    commands.insert_resource(SharedMemoryPresent(presenter));
}

/// The image the camera draws into: in the X server's byte order (B, G, R, unused), with no
/// copy kept in the main world.
fn frame_image(size: UVec2) -> Image {
    let mut image = Image::new_uninit(
        Extent3d {
            width: size.x,
            height: size.y,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        TextureFormat::Bgra8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD,
    );
    image.texture_descriptor.usage =
        TextureUsages::RENDER_ATTACHMENT | TextureUsages::COPY_SRC | TextureUsages::TEXTURE_BINDING;
    image
}

/// Keeps the image at the window's size; back to the swapchain if the presenter stopped.
fn follow_the_window(
    present: Option<Res<SharedMemoryPresent>>,
    windows: Query<&Window, With<PrimaryWindow>>,
    cameras: Query<Entity, With<StraightToScreen>>,
    mut images: ResMut<Assets<Image>>,
    mut commands: Commands,
) {
    let (Some(present), Ok(window)) = (present, windows.single()) else {
        return;
    };
    if present.0.stopped.load(Ordering::Relaxed) {
        warn!("the party screen presents through the swapchain from now on");
        for camera in &cameras {
            commands.entity(camera).insert(RenderTarget::default());
        }
        commands.remove_resource::<SharedMemoryPresent>();
        return;
    }
    let size = UVec2::new(window.physical_width(), window.physical_height()).max(UVec2::ONE);
    let Ok(mut current) = present.0.size.lock() else {
        return;
    };
    if *current != size {
        match images.insert(&present.0.image, frame_image(size)) {
            Ok(()) => *current = size,
            Err(error) => warn!(%error, "the party screen's image could not follow the window"),
        }
    }
}

/// After the party screen's passes: the frame into a free staging buffer.
fn copy_frame_out(
    view: ViewQuery<&ExtractedCamera>,
    present: Option<Res<SharedMemoryPresent>>,
    images: Res<RenderAssets<GpuImage>>,
    mut ctx: RenderContext,
) {
    let (Some(present), Some(NormalizedRenderTarget::Image(target))) =
        (present, &view.into_inner().target)
    else {
        return;
    };
    let Some(image) = images.get(target.handle.id()) else {
        return;
    };
    let size = image.texture_descriptor.size;
    // Rows of a buffer copy are 256-byte aligned; the X server is told the padded width.
    let row_bytes = (size.width * 4).next_multiple_of(256);
    let Some(mut staged) = present.0.take_buffer(ctx.render_device()) else {
        return;
    };
    let needed = u64::from(row_bytes) * u64::from(size.height);
    if staged.buffer.size() < needed {
        staged.buffer = staging_buffer(ctx.render_device(), needed);
    }
    (staged.width, staged.height, staged.row_bytes) = (size.width, size.height, row_bytes);
    ctx.command_encoder().copy_texture_to_buffer(
        image.texture.as_image_copy(),
        TexelCopyBufferInfo {
            buffer: &staged.buffer,
            layout: TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row_bytes),
                rows_per_image: None,
            },
        },
        size,
    );
    if let Ok(mut recorded) = present.0.recorded.lock() {
        recorded.push(staged);
    }
}

fn staging_buffer(device: &RenderDevice, size: u64) -> Buffer {
    device.create_buffer(&BufferDescriptor {
        label: Some("party screen frame for X"),
        size,
        usage: BufferUsages::COPY_DST | BufferUsages::MAP_READ,
        mapped_at_creation: false,
    })
}

impl Presenter {
    /// A presenter for `image`, and the channel its thread takes submitted frames from.
    fn new(image: Handle<Image>, size: UVec2) -> (Self, Receiver<Staged>) {
        let (free_sender, free) = crossbeam_channel::bounded(STAGING_BUFFERS);
        let (submitted, to_present) = crossbeam_channel::bounded(STAGING_BUFFERS);
        let presenter = Presenter {
            image,
            size: Mutex::new(size),
            free,
            free_sender,
            created: AtomicUsize::new(0),
            recorded: Mutex::new(Vec::new()),
            submitted,
            capture: Mutex::new(None),
            stopped: AtomicBool::new(false),
        };
        (presenter, to_present)
    }

    /// A buffer to copy a frame into: a free one, a new one while there are fewer than
    /// [`STAGING_BUFFERS`], or the next the presenter frees. Waiting here is what paces the
    /// frames to what the X server shows.
    fn take_buffer(&self, device: &RenderDevice) -> Option<Staged> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        if let Ok(staged) = self.free.try_recv() {
            return Some(staged);
        }
        if self.created.fetch_add(1, Ordering::Relaxed) < STAGING_BUFFERS {
            return Some(Staged {
                buffer: staging_buffer(device, 4),
                width: 0,
                height: 0,
                row_bytes: 0,
            });
        }
        // Bounded, in case the presenter stops meanwhile: a frame drawn and not shown, not a hang.
        self.free.recv_timeout(Duration::from_secs(1)).ok()
    }
}

/// Once this frame's commands are submitted, its copied frame goes to the presenter.
fn send_submitted_frames(present: Option<Res<SharedMemoryPresent>>) {
    let Some(present) = present else {
        return;
    };
    let recorded = match present.0.recorded.lock() {
        Ok(mut recorded) => std::mem::take(&mut *recorded),
        Err(_) => return,
    };
    for staged in recorded {
        if let Err(error) = present.0.submitted.try_send(staged) {
            // Cannot happen while the presenter runs (there are only as many buffers as
            // places); if it stopped, the buffer goes back to be reused.
            let _ = present.0.free_sender.try_send(error.into_inner());
        }
    }
}

/// The presenter thread: each frame mapped, copied into the segment, and shown.
fn present_frames(
    device: &RenderDevice,
    presenter: &Presenter,
    frames: &Receiver<Staged>,
    mut x11: X11Window,
) {
    for staged in frames {
        let (mapped_sender, mapped) = crossbeam_channel::bounded(1);
        staged
            .buffer
            .slice(..)
            .map_async(MapMode::Read, move |result| {
                let _ = mapped_sender.send(result);
            });
        // Polled rather than waited on: a wait would be for the newest submission, a frame
        // later than this one.
        let mapped = loop {
            if let Err(error) = device.poll(PollType::Poll) {
                break Err(error.to_string());
            }
            match mapped.recv_timeout(Duration::from_micros(500)) {
                Ok(result) => break result.map_err(|e| e.to_string()),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    break Err("the frame's mapping was dropped".into());
                }
            }
        };
        let written = mapped.and_then(|()| {
            let len = staged.row_bytes as usize * staged.height as usize;
            let view = staged.buffer.slice(..).get_mapped_range();
            let pixels = view
                .get(..len)
                .ok_or("the frame is larger than its buffer")?;
            x11.write_frame(pixels).map_err(|e| e.to_string())
        });
        staged.buffer.unmap();
        let (width, height, row_bytes) = (staged.width, staged.height, staged.row_bytes);
        let _ = presenter.free_sender.try_send(staged);
        let shown = written.and_then(|()| {
            x11.show_frame(width, height, row_bytes)
                .map_err(|e| e.to_string())
        });
        if let Err(error) = shown {
            error!(%error, "the party screen stopped presenting through X shared memory");
            presenter.stopped.store(true, Ordering::Relaxed);
            if let Some((reply, _)) = presenter.capture.lock().ok().and_then(|mut c| c.take()) {
                let _ = reply.send(Err(error));
            }
            return;
        }
        if let Ok(mut capture) = presenter.capture.lock()
            && let Some((reply, waited)) = capture.take()
        {
            match x11.read_back(width, height) {
                Ok(Some(image)) => drop(reply.send(Ok(image))),
                // The next frame, once the X server has made the window the frame's size.
                Ok(None) if waited < CAPTURE_WAIT_FRAMES => *capture = Some((reply, waited + 1)),
                Ok(None) => drop(reply.send(Err(format!(
                    "the window on the X server is not the frame's {width}×{height} after {waited} frames"
                )))),
                Err(error) => drop(reply.send(Err(error.to_string()))),
            }
        }
    }
}

/// The X side: a connection of its own, a shared-memory segment and the window's GC.
mod x11_window;

#[cfg(test)]
mod tests {
    use super::*;
    use bevy::window::WindowResolution;

    fn presenter(image: Handle<Image>, size: UVec2) -> SharedMemoryPresent {
        SharedMemoryPresent(Arc::new(Presenter::new(image, size).0))
    }

    fn app_with_window(size: UVec2) -> (App, Entity) {
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, bevy::asset::AssetPlugin::default()))
            .init_asset::<Image>()
            .add_systems(Update, follow_the_window);
        let window = app
            .world_mut()
            .spawn((
                Window {
                    resolution: WindowResolution::new(size.x, size.y),
                    ..default()
                },
                PrimaryWindow,
            ))
            .id();
        (app, window)
    }

    #[test]
    fn the_image_follows_the_windows_size() {
        let (mut app, window) = app_with_window(UVec2::new(1280, 720));
        let image = app
            .world_mut()
            .resource_mut::<Assets<Image>>()
            .add(frame_image(UVec2::new(1280, 720)));
        let present = presenter(image.clone(), UVec2::new(1280, 720));
        app.insert_resource(present.clone());
        app.update();
        // A render-only image leaves the main world once the render world has it.
        app.world_mut()
            .resource_mut::<Assets<Image>>()
            .remove(&image);
        app.world_mut()
            .entity_mut(window)
            .get_mut::<Window>()
            .expect("the window")
            .resolution
            .set_physical_resolution(1920, 1080);
        app.update();
        let size = app
            .world()
            .resource::<Assets<Image>>()
            .get(&image)
            .map(|i| i.size());
        assert_eq!(size, Some(UVec2::new(1920, 1080)));
        assert_eq!(
            present.0.size.lock().map(|s| *s).ok(),
            Some(UVec2::new(1920, 1080))
        );
    }

    #[test]
    fn a_stopped_presenter_hands_the_camera_back_to_the_window() {
        let (mut app, _) = app_with_window(UVec2::new(1280, 720));
        let image = app
            .world_mut()
            .resource_mut::<Assets<Image>>()
            .add(frame_image(UVec2::new(1280, 720)));
        let camera = app
            .world_mut()
            .spawn((StraightToScreen, RenderTarget::Image(image.clone().into())))
            .id();
        let present = presenter(image, UVec2::new(1280, 720));
        present.0.stopped.store(true, Ordering::Relaxed);
        app.insert_resource(present);
        app.update();
        assert!(!app.world().contains_resource::<SharedMemoryPresent>());
        let target = app.world().get::<RenderTarget>(camera);
        assert!(
            matches!(target, Some(RenderTarget::Window(_))),
            "the camera still draws into {target:?}"
        );
    }
}
