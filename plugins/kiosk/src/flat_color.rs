//! `FlatColor`: the material of the visualizer's bars and glow, one colour per mesh.
//!
//! Why not Bevy's `ColorMaterial`: its fragment shader samples an optional texture and runs
//! the camera's tone mapping and colour grading (several `pow`s a channel) on every pixel. A
//! GPU does not notice; a CPU renderer (lavapipe, a Pi) pays it on each of the ~600,000
//! pixels the bars and the glow cover at 1080p. The colours here are plain sRGB, so tone
//! mapping "none" and neutral grading change nothing but the cost.

use bevy::asset::{AssetPath, embedded_asset, embedded_path};
use bevy::prelude::*;
use bevy::render::render_resource::AsBindGroup;
use bevy::shader::ShaderRef;
use bevy::sprite_render::{Material2d, Material2dPlugin};

/// A mesh drawn in one colour.
#[derive(Asset, TypePath, AsBindGroup, Clone, Debug)]
pub struct FlatColor {
    /// The colour, linear (what the shader writes; the window's sRGB format encodes it).
    #[uniform(0)]
    pub color: LinearRgba,
}

impl FlatColor {
    /// A material of `color`.
    pub fn new(color: impl Into<LinearRgba>) -> Self {
        Self {
            color: color.into(),
        }
    }
}

impl Material2d for FlatColor {
    fn fragment_shader() -> ShaderRef {
        ShaderRef::Path(
            AssetPath::from_path_buf(embedded_path!("flat_color.wgsl")).with_source("embedded"),
        )
    }
}

/// Loads the shader and adds `Material2dPlugin::<FlatColor>`.
pub struct FlatColorPlugin;

impl Plugin for FlatColorPlugin {
    fn build(&self, app: &mut App) {
        embedded_asset!(app, "flat_color.wgsl");
        app.add_plugins(Material2dPlugin::<FlatColor>::default());
    }
}
