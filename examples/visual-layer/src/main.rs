//! The party screen with an extra visual layer:
//! `cargo run -p whatnext-visual-layer -- --kiosk --demo`.

fn main() -> std::process::ExitCode {
    whatnext::run_with(|app| {
        app.add_plugins(whatnext_visual_layer::VisualLayer);
    })
}
