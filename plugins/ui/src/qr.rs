//! The invite as a QR code, painted module by module (no texture to manage).

use bevy_egui::egui::{self, Color32, Rect, Sense, Vec2};
use qrcode::{Color, QrCode};

/// Paints `text` as a QR code `size` points wide, dark on a light quiet zone, so phones read
/// it off a dark theme too. Returns false if the text is too long for a QR code.
pub fn paint(ui: &mut egui::Ui, text: &str, size: f32) -> bool {
    let Ok(code) = QrCode::new(text.as_bytes()) else {
        return false;
    };
    let width = code.width();
    let colors = code.to_colors();
    // Four modules of quiet zone on each side, as scanners expect.
    let cells = width + 8;
    let module = size / cells as f32;
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(size), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::WHITE);
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (x, y) = ((i % width + 4) as f32, (i / width + 4) as f32);
            let min = rect.min + Vec2::new(x * module, y * module);
            painter.rect_filled(
                Rect::from_min_size(min, Vec2::splat(module)),
                0.0,
                Color32::BLACK,
            );
        }
    }
    true
}

/// The dark modules of `text`'s QR code, row by row (for tests).
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
