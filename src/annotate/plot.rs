//! The confusion matrix as a picture: one row per true class, one column per predicted
//! class, each cell shaded by the share of its row (so small classes show as plainly as
//! large ones) and labelled with its count.

use super::Agreement;
use crate::error::Result;
use plotters::prelude::*;
use std::path::Path;

/// Pixels per matrix cell, and for the class names beside and above.
const CELL: u32 = 44;
const ROW_NAMES: u32 = 190;
const COLUMN_NAMES: u32 = 150;

/// Draws `agreement`'s confusion matrix as a PNG at `out`, titled `title`.
pub fn plot_confusion(agreement: &Agreement, title: &str, out: &Path) -> Result<()> {
    let (rows, cols) = (
        agreement.true_classes.len(),
        agreement.predicted_classes.len(),
    );
    let size = (
        ROW_NAMES + CELL * cols as u32 + 20,
        COLUMN_NAMES + CELL * rows as u32 + 60,
    );
    crate::plot::render_png(out, size, |root| {
        let text = |s: &str, x: i32, y: i32, style: TextStyle| {
            root.draw(&Text::new(s.to_string(), (x, y), style))
                .map_err(|e| e.to_string())
        };
        let font = ("sans-serif", 13).into_font();
        text(title, 10, 8, ("sans-serif", 16).into_font().into())?;
        let subtitle = format!(
            "accuracy {:.3}, macro-F1 {:.3}; rows: true class, columns: predicted; shade: share of the row",
            agreement.accuracy, agreement.macro_f1
        );
        text(&subtitle, 10, 30, font.clone().into())?;
        let top = COLUMN_NAMES as i32 + 50;
        for (j, name) in agreement.predicted_classes.iter().enumerate() {
            let x = (ROW_NAMES + CELL * j as u32 + CELL / 2) as i32;
            let style = font
                .clone()
                .transform(FontTransform::Rotate270)
                .into_text_style(root);
            text(name, x - 6, top - 6, style)?;
        }
        for (i, name) in agreement.true_classes.iter().enumerate() {
            let y = top + (CELL * i as u32) as i32;
            text(name, 10, y + CELL as i32 / 2 - 7, font.clone().into())?;
            let total: usize = agreement.confusion[i].iter().sum::<usize>().max(1);
            for (j, &count) in agreement.confusion[i].iter().enumerate() {
                let x = (ROW_NAMES + CELL * j as u32) as i32;
                let share = count as f64 / total as f64;
                let shade = RGBColor(
                    (255.0 * (1.0 - 0.85 * share)) as u8,
                    (255.0 * (1.0 - 0.6 * share)) as u8,
                    255,
                );
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL as i32, y + CELL as i32)],
                    shade.filled(),
                ))
                .map_err(|e| e.to_string())?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL as i32, y + CELL as i32)],
                    RGBColor(200, 200, 200),
                ))
                .map_err(|e| e.to_string())?;
                if count > 0 {
                    let ink = if share > 0.5 { WHITE } else { BLACK };
                    let style = font.clone().color(&ink);
                    text(&count.to_string(), x + 6, y + CELL as i32 / 2 - 7, style)?;
                }
            }
        }
        Ok(())
    })
}
