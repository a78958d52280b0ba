//! The invite as a QR code: encoded once per text into a small texture (one pixel a module),
//! then drawn as one image each frame. Painting it module by module cost the party screen a
//! QR encode and about a thousand rectangles to tessellate every frame.

use bevy_egui::egui::{self, Color32, ColorImage, TextureHandle, TextureOptions, Vec2};
use qrcode::{Color, QrCode};

/// Modules of quiet zone on each side, as scanners expect.
const QUIET: usize = 4;

/// Paints `text` as a QR code `size` points wide, dark on a light quiet zone, so phones read
/// it off a dark theme too. Returns false if the text is too long for a QR code.
pub fn paint(ui: &mut egui::Ui, text: &str, size: f32) -> bool {
    let Some(texture) = texture(ui.ctx(), text) else {
        return false;
    };
    ui.add(egui::Image::new((texture.id(), Vec2::splat(size))));
    true
}

/// The texture for `text`, made once and kept in egui's memory while the text is the same.
fn texture(ctx: &egui::Context, text: &str) -> Option<TextureHandle> {
    let id = egui::Id::new(("whatnext-qr", text));
    if let Some(texture) = ctx.data(|d| d.get_temp::<TextureHandle>(id)) {
        return Some(texture);
    }
    let image = image(text)?;
    // Nearest: each module stays a crisp square however large the code is drawn.
    let texture = ctx.load_texture("whatnext-qr", image, TextureOptions::NEAREST);
    ctx.data_mut(|d| d.insert_temp(id, texture.clone()));
    Some(texture)
}

/// `text`'s QR code as an image, one pixel per module, with its quiet zone.
fn image(text: &str) -> Option<ColorImage> {
    let rows = modules(text)?;
    let side = rows.len() + 2 * QUIET;
    let mut pixels = vec![Color32::WHITE; side * side];
    for (y, row) in rows.iter().enumerate() {
        for (x, dark) in row.iter().enumerate() {
            if *dark {
                pixels[(y + QUIET) * side + x + QUIET] = Color32::BLACK;
            }
        }
    }
    Some(ColorImage::new([side, side], pixels))
}

/// The dark modules of `text`'s QR code, row by row.
pub fn modules(text: &str) -> Option<Vec<Vec<bool>>> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    let width = code.width();
    Some(
        code.to_colors()
            .chunks(width)
            .map(|row| row.iter().map(|c| *c == Color::Dark).collect())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_has_a_pixel_per_module_inside_a_quiet_zone() {
        let text = "whtnxt://connect/12D3KooWHana?session=S&key=00";
        let rows = modules(text).expect("a QR code");
        let image = image(text).expect("an image");
        let side = rows.len() + 2 * QUIET;
        assert_eq!(image.size, [side, side]);
        for y in 0..side {
            for x in 0..side {
                let inside = (QUIET..QUIET + rows.len()).contains(&y)
                    && (QUIET..QUIET + rows.len()).contains(&x);
                let dark = inside && rows[y - QUIET][x - QUIET];
                let want = if dark { Color32::BLACK } else { Color32::WHITE };
                assert_eq!(image.pixels[y * side + x], want, "({x}, {y})");
            }
        }
    }
}
