//! The party screen draws straight into the window's swapchain texture, in one render pass:
//! the Bevy 2D scene (the bars, the glow, an extension's layers), then the egui overlay.
//!
//! Why: a Bevy camera draws into a texture of its own and then *blits* it into the window
//! (`upscaling`). On a CPU renderer that blit is a full-screen pass of 2 MPixels at 1080p,
//! 13–15 ms under lavapipe here, before anything is drawn (`docs/decisions/party-screen-speed.md`).
//! The kiosk camera therefore runs a camera schedule of its own, [`PartyScreenPasses`]: the
//! same 2D render phases Bevy queues for it, and egui's paint jobs, drawn with pipelines
//! specialized for the window's format instead of the camera texture's. One pass, not one
//! for the scene and one for the overlay: a CPU renderer loads and stores the whole 8 MB frame
//! for each pass (2.6 ms of lavapipe's time for an overlay that covers a tenth of the screen).

use bevy::camera::NormalizedRenderTarget;
use bevy::core_pipeline::core_2d::{AlphaMask2d, CORE_2D_DEPTH_FORMAT, Opaque2d, Transparent2d};
use bevy::ecs::schedule::{ScheduleBuildSettings, ScheduleLabel};
use bevy::math::{URect, UVec2};
use bevy::prelude::*;
use bevy::render::camera::ExtractedCamera;
use bevy::render::diagnostic::RecordDiagnostics;
use bevy::render::extract_component::{ExtractComponent, ExtractComponentPlugin};
use bevy::render::render_phase::{
    TrackedRenderPass, ViewBinnedRenderPhases, ViewSortedRenderPhases,
};
use bevy::render::render_resource::{
    Buffer, BufferDescriptor, BufferUsages, CachedRenderPipelineId, CompareFunction,
    DepthStencilState, IndexFormat, PipelineCache, RenderPassDescriptor, SpecializedRenderPipeline,
    StoreOp, TextureFormat,
};
use bevy::render::renderer::{RenderContext, RenderDevice, RenderQueue, ViewQuery};
use bevy::render::sync_world::MainEntity;
use bevy::render::view::{ExtractedView, ExtractedWindows, ViewDepthTexture, ViewTarget};
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy_egui::egui;
use bevy_egui::render::systems::{EguiTextureBindGroups, EguiTextureId, EguiTransforms};
use bevy_egui::render::{EguiCameraView, EguiPipeline, EguiPipelineKey};
use bevy_egui::{EguiPixelsPerPoint, EguiRenderOutput};

/// On a camera that draws straight into its window (with `CameraRenderGraph` set to
/// [`PartyScreenPasses`]).
#[derive(Component, Clone, Copy, Debug, Default, ExtractComponent)]
pub struct StraightToScreen;

/// The camera schedule of a [`StraightToScreen`] camera.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartyScreenPasses;

/// Adds the [`PartyScreenPasses`] schedule and what it needs in the render world.
pub struct StraightToScreenPlugin;

impl Plugin for StraightToScreenPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(ExtractComponentPlugin::<StraightToScreen>::default());
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            return;
        };
        let mut passes = Schedule::new(PartyScreenPasses);
        passes.set_build_settings(ScheduleBuildSettings {
            auto_insert_apply_deferred: false,
            ..default()
        });
        render_app
            .add_schedule(passes)
            .init_resource::<Overlay>()
            .add_systems(
                Render,
                (
                    // Before the 2D pipelines' view keys are taken (`PrepareAssets`).
                    draw_in_the_windows_format
                        .after(RenderSystems::ExtractCommands)
                        .before(RenderSystems::PrepareAssets)
                        .before(RenderSystems::CreateViews),
                    prepare_overlay.in_set(RenderSystems::PrepareResources),
                ),
            )
            .add_systems(PartyScreenPasses, draw_party_screen);
    }
}

/// Bevy's 2D pipelines are specialized for the view's format, which for a window is that of
/// the camera's own texture (RGBA); drawing into the window needs the window's (often BGRA).
fn draw_in_the_windows_format(
    windows: Res<ExtractedWindows>,
    mut views: Query<(&mut ExtractedView, &ExtractedCamera), With<StraightToScreen>>,
) {
    for (mut view, camera) in &mut views {
        let Some(NormalizedRenderTarget::Window(window)) = &camera.target else {
            continue;
        };
        if let Some(format) = windows
            .windows
            .get(&window.entity())
            .and_then(|w| w.swap_chain_texture_view_format)
            && view.target_format != format
        {
            view.target_format = format;
        }
    }
}

/// One egui mesh: where it may draw, which indices, with which texture.
struct OverlayDraw {
    clip: URect,
    indices: std::ops::Range<u32>,
    texture: EguiTextureId,
}

/// The egui overlay of this frame, uploaded for [`draw_party_screen`].
#[derive(Resource, Default)]
pub(crate) struct Overlay {
    vertices: Option<Buffer>,
    indices: Option<Buffer>,
    draws: Vec<OverlayDraw>,
    /// egui's pipeline, and the format it was made for.
    pipeline: Option<(TextureFormat, CachedRenderPipelineId)>,
    /// The camera's main-world entity: egui's transforms and textures are keyed by it.
    camera: Option<MainEntity>,
    vertex_bytes: Vec<u8>,
    index_data: Vec<u32>,
}

/// egui's vertex as its pipeline reads it: position, texture coordinate, sRGBA colour.
const VERTEX_BYTES: usize = 20;

fn write_vertex(out: &mut Vec<u8>, v: &egui::epaint::Vertex) {
    for f in [v.pos.x, v.pos.y, v.uv.x, v.uv.y] {
        out.extend_from_slice(&f.to_le_bytes());
    }
    out.extend_from_slice(&v.color.to_array());
}

/// A buffer of at least `size` bytes: the old one while it is big enough.
fn sized_buffer(
    device: &RenderDevice,
    buffer: &mut Option<Buffer>,
    size: usize,
    usage: BufferUsages,
    label: &'static str,
) {
    if buffer.as_ref().is_some_and(|b| b.size() as usize >= size) {
        return;
    }
    *buffer = Some(device.create_buffer(&BufferDescriptor {
        label: Some(label),
        size: size.next_power_of_two().max(1024) as u64,
        usage: usage | BufferUsages::COPY_DST,
        mapped_at_creation: false,
    }));
}

/// Turns the kiosk camera's egui paint jobs into one vertex and one index buffer, and
/// specializes egui's pipeline for the window's format.
#[allow(clippy::too_many_arguments)]
fn prepare_overlay(
    cameras: Query<(&ExtractedView, &EguiCameraView), With<StraightToScreen>>,
    ui_views: Query<(&ExtractedView, &EguiRenderOutput, &EguiPixelsPerPoint)>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    egui_pipeline: Res<EguiPipeline>,
    cache: Res<PipelineCache>,
    mut overlay: ResMut<Overlay>,
) {
    let overlay = &mut *overlay;
    overlay.draws.clear();
    overlay.vertex_bytes.clear();
    overlay.index_data.clear();
    let Some((camera_view, ui)) = cameras.iter().next() else {
        return;
    };
    let Ok((ui_view, output, scale)) = ui_views.get(ui.0) else {
        return;
    };
    let camera = ui_view.retained_view_entity.main_entity;
    overlay.camera = Some(camera);
    let format = camera_view.target_format;
    if overlay
        .pipeline
        .is_none_or(|(made_for, _)| made_for != format)
    {
        // egui's pipeline, made to fit the scene's render pass: it has the scene's depth
        // buffer, which the overlay neither tests nor writes.
        let mut descriptor = egui_pipeline.specialize(EguiPipelineKey {
            target_format: format,
        });
        descriptor.label = Some("party_screen_overlay".into());
        descriptor.depth_stencil = Some(DepthStencilState {
            format: CORE_2D_DEPTH_FORMAT,
            depth_write_enabled: Some(false),
            depth_compare: Some(CompareFunction::Always),
            stencil: default(),
            bias: default(),
        });
        overlay.pipeline = Some((format, cache.queue_render_pipeline(descriptor)));
    }
    let to_px = |p: egui::Pos2| {
        UVec2::new(
            (p.x * scale.pixels_per_point).round().max(0.0) as u32,
            (p.y * scale.pixels_per_point).round().max(0.0) as u32,
        )
    };
    for egui::ClippedPrimitive {
        clip_rect,
        primitive,
    } in &output.paint_jobs
    {
        // The overlay paints no callbacks; only meshes.
        let egui::epaint::Primitive::Mesh(mesh) = primitive else {
            continue;
        };
        if mesh.indices.is_empty() {
            continue;
        }
        let first_vertex = (overlay.vertex_bytes.len() / VERTEX_BYTES) as u32;
        let start = overlay.index_data.len() as u32;
        for v in &mesh.vertices {
            write_vertex(&mut overlay.vertex_bytes, v);
        }
        overlay
            .index_data
            .extend(mesh.indices.iter().map(|i| i + first_vertex));
        let texture = match mesh.texture_id {
            egui::TextureId::Managed(id) => EguiTextureId::Managed(camera, id),
            egui::TextureId::User(id) => EguiTextureId::User(id),
        };
        overlay.draws.push(OverlayDraw {
            clip: URect::from_corners(to_px(clip_rect.min), to_px(clip_rect.max)),
            indices: start..overlay.index_data.len() as u32,
            texture,
        });
    }
    if overlay.draws.is_empty() {
        return;
    }
    let index_bytes: Vec<u8> = overlay
        .index_data
        .iter()
        .flat_map(|i| i.to_le_bytes())
        .collect();
    sized_buffer(
        &device,
        &mut overlay.vertices,
        overlay.vertex_bytes.len(),
        BufferUsages::VERTEX,
        "party screen overlay vertices",
    );
    sized_buffer(
        &device,
        &mut overlay.indices,
        index_bytes.len(),
        BufferUsages::INDEX,
        "party screen overlay indices",
    );
    if let (Some(vertices), Some(indices)) = (&overlay.vertices, &overlay.indices) {
        queue.write_buffer(vertices, 0, &overlay.vertex_bytes);
        queue.write_buffer(indices, 0, &index_bytes);
    }
}

/// The kiosk camera's whole frame in one render pass: the 2D scene over the clear colour,
/// then the overlay, straight into the window.
#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_party_screen(
    world: &World,
    view: ViewQuery<(
        &ExtractedCamera,
        &ExtractedView,
        &ViewTarget,
        &ViewDepthTexture,
    )>,
    opaque: Res<ViewBinnedRenderPhases<Opaque2d>>,
    alpha_mask: Res<ViewBinnedRenderPhases<AlphaMask2d>>,
    transparent: Res<ViewSortedRenderPhases<Transparent2d>>,
    overlay: Res<Overlay>,
    cache: Res<PipelineCache>,
    transforms: Res<EguiTransforms>,
    textures: Res<EguiTextureBindGroups>,
    clear: Res<ClearColor>,
    mut ctx: RenderContext,
) {
    let view_entity = view.entity();
    let (camera, extracted, target, depth) = view.into_inner();
    let Some(color) = target.out_texture_color_attachment(Some(clear.0.into())) else {
        return;
    };
    // The first frame, before the window's format is known, the pipelines are for another
    // format: clear only.
    let same_format = target.out_texture_view_format() == Some(extracted.target_format);
    let diagnostics = ctx.diagnostic_recorder();
    let diagnostics = diagnostics.as_deref();
    let mut pass = ctx.begin_tracked_render_pass(RenderPassDescriptor {
        label: Some("party_screen"),
        color_attachments: &[Some(color)],
        depth_stencil_attachment: Some(depth.get_attachment(StoreOp::Discard)),
        timestamp_writes: None,
        occlusion_query_set: None,
        multiview_mask: None,
    });
    let span = diagnostics.pass_span(&mut pass, "party_screen");
    if same_format {
        if let Some(viewport) = camera.viewport.as_ref() {
            pass.set_camera_viewport(viewport);
        }
        let key = &extracted.retained_view_entity;
        if let Some(phase) = opaque.get(key)
            && let Err(error) = phase.render(&mut pass, world, view_entity)
        {
            error!(?error, "the party screen's opaque phase failed");
        }
        if let Some(phase) = alpha_mask.get(key)
            && let Err(error) = phase.render(&mut pass, world, view_entity)
        {
            error!(?error, "the party screen's alpha-mask phase failed");
        }
        if let Some(phase) = transparent.get(key)
            && let Err(error) = phase.render(&mut pass, world, view_entity)
        {
            error!(?error, "the party screen's transparent phase failed");
        }
        if let Some(size) = camera.physical_target_size {
            draw_overlay(&mut pass, &overlay, &cache, &transforms, &textures, size);
        }
    }
    span.end(&mut pass);
}

/// egui's meshes of this frame, over the scene. Skipped while anything it needs is not ready
/// (the pipeline compiling, the camera's transform not prepared yet).
fn draw_overlay<'a>(
    pass: &mut TrackedRenderPass<'a>,
    overlay: &'a Overlay,
    cache: &'a PipelineCache,
    transforms: &'a EguiTransforms,
    textures: &'a EguiTextureBindGroups,
    size: UVec2,
) {
    if overlay.draws.is_empty() {
        return;
    }
    let (Some(pipeline), Some(camera_entity), Some(vertices), Some(indices)) = (
        overlay
            .pipeline
            .and_then(|(_, id)| cache.get_render_pipeline(id)),
        overlay.camera,
        overlay.vertices.as_ref(),
        overlay.indices.as_ref(),
    ) else {
        return;
    };
    let (Some((_, transform)), Some(offset)) = (
        transforms.bind_group.as_ref(),
        transforms.offsets.get(&camera_entity),
    ) else {
        return;
    };
    let screen = URect::from_corners(UVec2::ZERO, size);
    pass.set_render_pipeline(pipeline);
    pass.set_bind_group(0, transform, &[*offset]);
    pass.set_vertex_buffer(0, vertices.slice(..));
    pass.set_index_buffer(indices.slice(..), IndexFormat::Uint32);
    let mut bindless_offset = None;
    for draw in &overlay.draws {
        let clip = draw.clip.intersect(screen);
        if clip.is_empty() {
            continue;
        }
        let Some((texture, bindless)) = textures.get(&draw.texture) else {
            continue; // not uploaded yet: egui shows it next frame
        };
        pass.set_scissor_rect(clip.min.x, clip.min.y, clip.width(), clip.height());
        pass.set_bind_group(1, texture, &[]);
        if let Some(index) = bindless
            && bindless_offset != Some(*index)
        {
            bindless_offset = Some(*index);
            pass.set_immediates(0, &index.to_ne_bytes());
        }
        pass.draw_indexed(draw.indices.clone(), 0, 0..1);
    }
}
