//! Draws panels with plotters: PNG through its bitmap backend, SVG through its SVG backend, text
//! with the DejaVu Sans font embedded in the binary (`assets/DejaVuSans.ttf`, Bitstream Vera
//! license beside it), so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::series::Panel;

/// The embedded font.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Size of one panel, in pixels.
pub(crate) const PANEL_WIDTH: u32 = 640;
/// Height of one panel, in pixels.
pub(crate) const PANEL_HEIGHT: u32 = 400;
/// Pixels of a panel taken by the y labels and margins (the plot area is the rest).
const Y_LABELS: u32 = 70;
const MARGIN: u32 = 12;

/// Pixel columns of a panel's plot area: the downsampling buckets.
pub(crate) const PLOT_COLUMNS: usize = (PANEL_WIDTH - Y_LABELS - 2 * MARGIN) as usize;

/// The line colours, W&B-like.
const COLORS: [RGBColor; 10] = [
    RGBColor(0x5a, 0x6f, 0xe0),
    RGBColor(0xe8, 0x71, 0x24),
    RGBColor(0x2a, 0xa1, 0x98),
    RGBColor(0xd6, 0x3b, 0x5c),
    RGBColor(0x7c, 0x4d, 0xcc),
    RGBColor(0x4c, 0xa3, 0x3b),
    RGBColor(0xc2, 0x9a, 0x1d),
    RGBColor(0x33, 0x86, 0xd6),
    RGBColor(0x8c, 0x56, 0x3c),
    RGBColor(0x66, 0x66, 0x66),
];

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Png,
    Svg,
}

impl Format {
    /// The format for an output path, by extension.
    pub(crate) fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "png" => Some(Format::Png),
            "svg" => Some(Format::Svg),
            _ => None,
        }
    }
}

/// The grid for `n` panels: (rows, columns), at most three columns.
pub(crate) fn grid(n: usize) -> (u32, u32) {
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let cols = n.min(3);
    (n.div_ceil(cols), cols)
}

/// The image size for `n` panels.
pub(crate) fn image_size(n: usize) -> (u32, u32) {
    let (rows, cols) = grid(n);
    (cols * PANEL_WIDTH, rows * PANEL_HEIGHT)
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The font is ours and valid; a failure would only lose text.
            let _ = plotters::style::register_font("sans-serif", style, FONT);
        }
    });
}

/// Draws `panels` into `out` in `format`; the error is plotters' message.
pub(crate) fn draw(
    panels: &[Panel],
    log_y: bool,
    out: &Path,
    format: Format,
) -> Result<(), String> {
    register_font();
    let size = image_size(panels.len());
    match format {
        Format::Png => {
            let root = BitMapBackend::new(out, size).into_drawing_area();
            draw_on(&root, panels, log_y)?;
            root.present().map_err(|e| e.to_string())
        }
        Format::Svg => {
            let root = SVGBackend::new(out, size).into_drawing_area();
            draw_on(&root, panels, log_y)?;
            root.present().map_err(|e| e.to_string())
        }
    }
}

fn draw_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[Panel],
    log_y: bool,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (rows, cols) = grid(panels.len());
    let areas = root.split_evenly((rows as usize, cols as usize));
    if panels.is_empty() {
        if let Some(area) = areas.first() {
            area.draw_text(
                "no numeric history metric matched",
                &("sans-serif", 20).into_font().color(&BLACK),
                (20, 20),
            )
            .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(area, panel, log_y)?;
    }
    Ok(())
}

/// Widens an empty or zero-width range so the axis has something to show.
fn pad((lo, hi): (f64, f64)) -> (f64, f64) {
    if hi > lo {
        let margin = (hi - lo) * 0.03;
        (lo - margin, hi + margin)
    } else {
        let margin = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 0.5 };
        (lo - margin, hi + margin)
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    log_y: bool,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let ((x0, x1), (y0, y1)) = panel.bounds().unwrap_or(((0.0, 1.0), (0.0, 1.0)));
    let (x0, x1) = if x1 > x0 { (x0, x1) } else { pad((x0, x1)) };
    let (y0, y1) = pad((y0, y1));
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.metric, ("sans-serif", 18).into_font())
        .margin(MARGIN)
        .x_label_area_size(36)
        .y_label_area_size(Y_LABELS - MARGIN)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let y_format = |v: &f64| {
        if log_y {
            format!("{:.3}", 10f64.powf(*v))
        } else {
            short(*v)
        }
    };
    chart
        .configure_mesh()
        .light_line_style(RGBColor(0xf6, 0xf6, 0xf6))
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .x_desc(&panel.x)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&y_format)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    for (index, line) in panel.lines.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let style = ShapeStyle::from(&color).stroke_width(2);
        let mut labelled = false;
        for segment in &line.segments {
            // A lone point draws no line: mark it.
            if segment.len() == 1 {
                chart
                    .draw_series(segment.iter().map(|&p| Circle::new(p, 2, style.filled())))
                    .map_err(err)?;
            }
            let series = chart
                .draw_series(LineSeries::new(segment.iter().copied(), style))
                .map_err(err)?;
            if !labelled {
                labelled = true;
                series
                    .label(line.run.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0xcc, 0xcc, 0xcc))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// A compact axis label: integers as they are, others with up to 4 significant digits.
pub(crate) fn short(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:.2e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
