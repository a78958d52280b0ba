//! An example extension: a visual layer for the party screen. A ring of dots floats over the
//! visualizer; each dot's size follows a bar of `VisualizerFrame`, and the ring swells on
//! the beat (whatnext's flash limiter has already capped those at 3 a second).

use whatnext::prelude::*;

/// Draws a ring of dots over the party screen's visualizer that pulses with the music.
///
/// Adds one system in `Startup` that spawns the dots and one in `Update` that moves and sizes
/// them from the `VisualizerFrame` resource (it does nothing when there is none).
pub struct VisualLayer;

/// Dots in the ring.
pub const DOTS: usize = 24;

#[derive(Component)]
struct Dot(usize);

impl Plugin for VisualLayer {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, spawn_ring)
            .add_systems(Update, pulse_ring);
    }
}

fn spawn_ring(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<ColorMaterial>>,
) {
    let dot = meshes.add(Circle::new(1.0));
    let colour = materials.add(Color::srgb(0.95, 0.9, 1.0));
    for i in 0..DOTS {
        commands.spawn((
            Dot(i),
            Mesh2d(dot.clone()),
            MeshMaterial2d(colour.clone()),
            // In front of the bars (z 0) and the glow (z -1).
            Transform::from_xyz(0.0, 0.0, 1.0),
        ));
    }
}

/// Where dot `i` of `DOTS` sits and how big it is, for this frame (a pure function, so the
/// layer's motion can be checked without a window).
pub fn dot_at(i: usize, frame: &VisualizerFrame, radius: f32) -> (Vec2, f32) {
    let angle = i as f32 / DOTS as f32 * std::f32::consts::TAU;
    let level = frame
        .levels
        .get(i * frame.levels.len().max(1) / DOTS)
        .copied()
        .unwrap_or(0.0);
    let r = radius * (1.0 + 0.08 * frame.flash);
    (Vec2::new(angle.cos(), angle.sin()) * r, 3.0 + 9.0 * level)
}

fn pulse_ring(
    frame: Option<Res<VisualizerFrame>>,
    windows: Query<&Window>,
    mut dots: Query<(&Dot, &mut Transform)>,
) {
    let (Some(frame), Ok(window)) = (frame, windows.single()) else {
        return; // not a party screen
    };
    let radius = window.height() * 0.28;
    for (dot, mut transform) in &mut dots {
        let (at, size) = dot_at(dot.0, &frame, radius);
        transform.translation = at.extend(1.0);
        transform.scale = Vec3::splat(size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_swells_on_a_flash_and_follows_the_levels() {
        let mut frame = VisualizerFrame {
            levels: vec![0.0; 48],
            flash: 0.0,
            playing: true,
        };
        let (calm, small) = dot_at(0, &frame, 100.0);
        frame.flash = 1.0;
        frame.levels[0] = 1.0;
        let (beat, big) = dot_at(0, &frame, 100.0);
        assert!(beat.length() > calm.length());
        assert!(big > small);
    }
}
