//! The X side of the party screen's shared-memory presentation: a connection of its own,
//! a shared-memory segment and the window's GC.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering};

use bevy::asset::RenderAssetUsages;
use bevy::image::Image;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, ImageFormat, ImageOrder};
use x11rb::rust_connection::RustConnection;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub struct X11Window {
    conn: RustConnection,
    window: u32,
    gc: u32,
    depth: u8,
    segment: Segment,
}

/// Memory the X server maps too: an unlinked file on a memory file system, handed to
/// the server by file descriptor (MIT-SHM 1.2), written with `pwrite`, so no `unsafe`.
struct Segment {
    id: u32,
    file: File,
    len: usize,
}

impl X11Window {
    /// Opens the X display of `$DISPLAY` and checks it can take frames from shared memory
    /// for `window`: a local server with MIT-SHM 1.2, 32-bit pixels of depth 24 in the
    /// byte order of the image the camera draws.
    pub fn open(window: u32, size: bevy::math::UVec2) -> Result<Self, Error> {
        let (conn, _) = x11rb::connect(None)?;
        if conn
            .extension_information(shm::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Err("the X server has no MIT-SHM".into());
        }
        let version = conn.shm_query_version()?.reply()?;
        if (version.major_version, version.minor_version) < (1, 2) {
            return Err("the X server's MIT-SHM is older than 1.2 (no file descriptors)".into());
        }
        let setup = conn.setup();
        if setup.image_byte_order != ImageOrder::LSB_FIRST {
            return Err("the X server wants most-significant-byte-first images".into());
        }
        let depth = conn.get_geometry(window)?.reply()?.depth;
        let four_bytes = setup
            .pixmap_formats
            .iter()
            .any(|f| f.depth == depth && f.bits_per_pixel == 32);
        if !(depth == 24 || depth == 32) || !four_bytes {
            return Err(format!("the window's depth is {depth}, not 24 or 32 bits").into());
        }
        let gc = conn.generate_id()?;
        conn.create_gc(gc, window, &CreateGCAux::new().graphics_exposures(0))?
            .check()?;
        // A segment now: a server on another machine cannot take it, and the swapchain stays.
        let segment = Segment::attach(&conn, frame_bytes(size.x, size.y))?;
        Ok(Self {
            conn,
            window,
            gc,
            depth,
            segment,
        })
    }

    /// Writes a frame (rows of `row_bytes`) into the segment, growing it if needed.
    pub fn write_frame(&mut self, pixels: &[u8]) -> Result<(), Error> {
        if self.segment.len < pixels.len() {
            let grown = Segment::attach(&self.conn, pixels.len())?;
            std::mem::replace(&mut self.segment, grown).detach(&self.conn);
        }
        self.segment.file.write_all_at(pixels, 0)?;
        Ok(())
    }

    /// Shows the segment's frame and waits until the server has read it, so that the
    /// next frame can be written.
    pub fn show_frame(&self, width: u32, height: u32, row_bytes: u32) -> Result<(), Error> {
        shm::put_image(
            &self.conn,
            self.window,
            self.gc,
            narrow(row_bytes / 4)?,
            narrow(height)?,
            0,
            0,
            narrow(width)?,
            narrow(height)?,
            0,
            0,
            self.depth,
            ImageFormat::Z_PIXMAP.into(),
            false,
            self.segment.id,
            0,
        )?;
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// The window's pixels as the X server has them, once the window has the frame's size
    /// (`None` before: a resize the X server has not made yet).
    pub fn read_back(&self, width: u32, height: u32) -> Result<Option<Image>, Error> {
        let geometry = self.conn.get_geometry(self.window)?.reply()?;
        if (u32::from(geometry.width), u32::from(geometry.height)) != (width, height) {
            return Ok(None);
        }
        let reply = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.window,
                0,
                0,
                narrow(width)?,
                narrow(height)?,
                u32::MAX,
            )?
            .reply()?;
        let mut data = reply.data;
        // The fourth byte is whatever the server keeps there; the screen is opaque.
        for pixel in data.chunks_exact_mut(4) {
            pixel[3] = 255;
        }
        Ok(Some(Image::new(
            Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            TextureDimension::D2,
            data,
            TextureFormat::Bgra8UnormSrgb,
            RenderAssetUsages::MAIN_WORLD,
        )))
    }
}

impl Drop for X11Window {
    fn drop(&mut self) {
        let _ = self.conn.free_gc(self.gc);
        self.segment.detach(&self.conn);
    }
}

fn narrow(value: u32) -> Result<u16, Error> {
    u16::try_from(value).map_err(|_| format!("{value} pixels is more than X allows").into())
}

fn frame_bytes(width: u32, height: u32) -> usize {
    (width * 4).next_multiple_of(256) as usize * height as usize
}

impl Segment {
    fn attach(conn: &RustConnection, len: usize) -> Result<Self, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // /dev/shm is memory; elsewhere the page cache serves as well.
        let dir = ["/dev/shm"]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!(
            "whatnext-frame-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Unlinked at once: it lives while this process and the server hold it.
        std::fs::remove_file(&path)?;
        file.set_len(len as u64)?;
        let id = conn.generate_id()?;
        conn.shm_attach_fd(id, file.try_clone()?, true)?.check()?;
        Ok(Self { id, file, len })
    }

    fn detach(&self, conn: &RustConnection) {
        let _ = conn.shm_detach(self.id);
        let _ = conn.flush();
    }
}
