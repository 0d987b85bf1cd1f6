//! PNG plots that render the same on every machine: DejaVu Sans is compiled in, and a
//! plot is drawn into a staging file that is renamed over the target only when complete.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;

/// What a drawing step returns: plotters' errors, as text.
pub type DrawResult = std::result::Result<(), String>;

/// Draws a `width` x `height` PNG at `out` with `draw`, atomically.
pub fn render_png(
    out: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> DrawResult,
) -> Result<()> {
    register_font();
    let staging = crate::fsutil::parent_dir(out).join(format!(
        ".{}.partial.png",
        out.file_stem()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default()
    ));
    let drawn = {
        let root = BitMapBackend::new(&staging, (width, height)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|_| draw(&root))
            .and_then(|_| root.present().map_err(|e| e.to_string()))
    };
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&staging);
        return Err(Error::InvalidArgument(format!(
            "plot {}: {e}",
            out.display()
        )));
    }
    std::fs::rename(&staging, out).map_err(|e| Error::io(out, e))
}

/// Plot text needs a font that every machine has: DejaVu Sans, compiled in.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Registration fails only for an unparsable font, which a compiled-in one is not.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}
