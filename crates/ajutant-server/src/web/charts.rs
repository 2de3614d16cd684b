//! Charts drawn on the server as inline SVG: no script, no chart library, nothing fetched.
//! Each chart comes with its title for screen readers (`role="img"`, `aria-label`, `<title>`)
//! and the same numbers as a table under "Show as table".
//!
//! Labels come from users and configuration (assistant ids, deployment names, categories), so
//! every piece of text and every attribute value is escaped here. That is what makes a chart
//! the one thing a template may insert with `|safe`: it is an [`Svg`], which only this module
//! can construct, and this module builds it from escaped text only. Never give `Svg` a public
//! constructor or a `From<String>`.
//!
//! Colours and sizes come from the `chart`, `bar`, `bar alt` and `axis` classes in `app.css`;
//! no `style` attribute, which the Content-Security-Policy would refuse.

use std::fmt::{self, Write as _};

/// The drawing's size in SVG units; the page scales it to the width available.
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 220.0;
/// Room for the value axis on the left, the labels below, and the legend above.
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;
/// Labels longer than this are cut under the bars (the table and the bar's tooltip keep them).
const MAX_LABEL_CHARS: usize = 14;
/// At most this many labels under the bars; the others are skipped so they do not overlap.
const MAX_LABELS: usize = 6;
/// The widest a bar gets, so one or two bars do not fill the chart.
const MAX_BAR_WIDTH: f64 = 40.0;

/// A chart as HTML (a `<figure>` with the SVG and its table), built only from escaped text.
/// Templates insert it with `{{ chart|safe }}`; see the module's comment for why that is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Svg(String);

impl fmt::Display for Svg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text made safe for HTML and SVG, in element content and in quoted attribute values alike.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than whitespace are not allowed in XML.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A number as people read it: whole numbers without decimals, small ones with enough.
pub(crate) fn number(value: f64) -> String {
    if !value.is_finite() {
        return "0".to_owned();
    }
    let text = if value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value.abs() < 1.0 {
        format!("{value:.4}")
    } else {
        format!("{value:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn with_unit(value: f64, unit: &str) -> String {
    match unit {
        "" => number(value),
        "%" => format!("{}%", number(value)),
        unit => format!("{} {unit}", number(value)),
    }
}

/// The value axis has room for a number only (and a percent sign); the unit is in the
/// tooltips and the table.
fn axis_value(value: f64, unit: &str) -> String {
    if unit == "%" {
        with_unit(value, unit)
    } else {
        number(value)
    }
}

fn short(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        label.to_owned()
    } else {
        let cut: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
        format!("{cut}…")
    }
}

/// A value that can be drawn: negative and non-finite values draw as nothing.
fn drawable(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// One series of a time chart: its name (for the legend and the table) and one value per
/// period.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// A bar chart: one bar per (label, value), in the order given.
pub(crate) fn bar_chart<L: AsRef<str>>(title: &str, data: &[(L, f64)], unit: &str) -> Svg {
    let labels: Vec<&str> = data.iter().map(|(label, _)| label.as_ref()).collect();
    let series = [Series {
        name: title.to_owned(),
        values: data.iter().map(|(_, value)| *value).collect(),
    }];
    draw(title, &labels, &series, unit)
}

/// Bars over time: one group per period (a day or a week), one bar in it per series. Two
/// series at most are told apart (`bar` and `bar alt`); `series` values line up with
/// `periods`.
pub(crate) fn time_series<L: AsRef<str>>(
    title: &str,
    periods: &[L],
    series: &[Series],
    unit: &str,
) -> Svg {
    let labels: Vec<&str> = periods.iter().map(AsRef::as_ref).collect();
    draw(title, &labels, series, unit)
}

fn draw(title: &str, labels: &[&str], series: &[Series], unit: &str) -> Svg {
    let mut html = String::new();
    let title_text = escape(title);
    let _ = write!(
        html,
        "<figure class=\"chart\"><figcaption>{title_text}</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-label=\"{title_text}\"><title>{title_text}</title>"
    );
    if labels.is_empty() || series.is_empty() {
        let _ = write!(
            html,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">No data</text></svg>\
             <p class=\"hint\">No data for this period.</p></figure>",
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        return Svg(html);
    }
    bars(&mut html, labels, series, unit);
    html.push_str("</svg>");
    table(&mut html, labels, series, unit);
    html.push_str("</figure>");
    Svg(html)
}

/// The axes, the bars, the labels under them and the legend.
fn bars(html: &mut String, labels: &[&str], series: &[Series], unit: &str) {
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_height;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied().map(drawable))
        .fold(0.0_f64, f64::max);
    // Axis: the baseline, and the largest value at the top left.
    let _ = write!(
        html,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base}\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>",
        WIDTH - RIGHT,
        LEFT - 4.0,
        TOP + 4.0,
        escape(&axis_value(max, unit)),
        LEFT - 4.0,
    );
    let slot = plot_width / labels.len() as f64;
    let per_slot = series.len() as f64;
    let bar_width = (slot * 0.8 / per_slot).clamp(1.0, MAX_BAR_WIDTH);
    // The bars of one slot, centred in it.
    let inset = (slot - bar_width * per_slot) / 2.0;
    let label_every = labels.len().div_ceil(MAX_LABELS);
    for (index, label) in labels.iter().enumerate() {
        let slot_x = LEFT + slot * index as f64 + inset;
        for (which, s) in series.iter().enumerate() {
            let value = s.values.get(index).copied().unwrap_or(0.0);
            let height = if max > 0.0 {
                drawable(value) / max * plot_height
            } else {
                0.0
            };
            let class = if which % 2 == 0 { "bar" } else { "bar alt" };
            let tip = if series.len() > 1 {
                format!("{}, {label}: {}", s.name, with_unit(value, unit))
            } else {
                format!("{label}: {}", with_unit(value, unit))
            };
            let _ = write!(
                html,
                "<rect class=\"{class}\" x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" \
                 height=\"{:.2}\"><title>{}</title></rect>",
                slot_x + bar_width * which as f64,
                base - height,
                bar_width,
                height,
                escape(&tip)
            );
        }
        if index % label_every == 0 {
            let _ = write!(
                html,
                "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
                LEFT + slot * index as f64 + slot / 2.0,
                base + 16.0,
                escape(&short(label))
            );
        }
    }
    if series.len() > 1 {
        let mut x = LEFT;
        for (which, s) in series.iter().enumerate() {
            let class = if which % 2 == 0 {
                "bar key"
            } else {
                "bar alt key"
            };
            let _ = write!(
                html,
                "<rect class=\"{class}\" x=\"{x}\" y=\"6\" width=\"10\" height=\"10\"/>\
                 <text x=\"{}\" y=\"15\">{}</text>",
                x + 14.0,
                escape(&s.name)
            );
            x += 24.0 + s.name.chars().count() as f64 * 6.5;
        }
    }
}

/// The chart's numbers as a table, for screen readers and anyone who wants the figures.
fn table(html: &mut String, labels: &[&str], series: &[Series], unit: &str) {
    html.push_str(
        "<details><summary>Show as table</summary><div class=\"table-wrap\"><table><thead><tr>\
         <th scope=\"col\"><span class=\"visually-hidden\">Label</span></th>",
    );
    for s in series {
        let _ = write!(
            html,
            "<th scope=\"col\" class=\"num\">{}</th>",
            escape(&s.name)
        );
    }
    html.push_str("</tr></thead><tbody>");
    for (index, label) in labels.iter().enumerate() {
        let _ = write!(html, "<tr><th scope=\"row\">{}</th>", escape(label));
        for s in series {
            let value = s.values.get(index).copied().unwrap_or(0.0);
            let _ = write!(
                html,
                "<td class=\"num\">{}</td>",
                escape(&with_unit(value, unit))
            );
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table></div></details>");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `height` of every bar, in order.
    fn heights(svg: &Svg) -> Vec<f64> {
        svg.0
            .split("<rect class=\"")
            .skip(1)
            .filter(|rest| rest.starts_with("bar\"") || rest.starts_with("bar alt\""))
            .filter_map(|rest| {
                let start = rest.find("height=\"")? + "height=\"".len();
                let end = rest[start..].find('"')? + start;
                rest[start..end].parse().ok()
            })
            .collect()
    }

    #[test]
    fn labels_and_titles_are_escaped() {
        let svg = bar_chart(
            "Calls <by> \"deployment\"",
            &[("<script>alert('x')</script>", 3.0), ("a&b", 1.0)],
            "calls",
        );
        let html = svg.to_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("a&amp;b"));
        assert!(html.contains("aria-label=\"Calls &lt;by&gt; &quot;deployment&quot;\""));
        assert!(!html.contains("style="));
    }

    #[test]
    fn bar_heights_are_proportional_to_the_values() {
        let svg = bar_chart("Cost", &[("a", 10.0), ("b", 5.0), ("c", 0.0)], "");
        let found = heights(&svg);
        assert_eq!(found.len(), 3, "{svg}");
        assert!(found[0] > 0.0);
        assert!((found[1] * 2.0 - found[0]).abs() < 0.02, "{found:?}");
        assert_eq!(found[2], 0.0);
    }

    #[test]
    fn empty_data_says_no_data() {
        let svg = bar_chart::<&str>("Nothing yet", &[], "calls");
        let html = svg.to_string();
        assert!(html.contains("No data"));
        assert!(html.contains("role=\"img\""));
        assert!(heights(&svg).is_empty());
    }

    #[test]
    fn two_series_draw_both_bars_with_a_legend_and_a_table() {
        let svg = time_series(
            "Helpful and not helpful",
            &["2026-11-02", "2026-11-03"],
            &[
                Series {
                    name: "Helpful".to_owned(),
                    values: vec![4.0, 2.0],
                },
                Series {
                    name: "Not helpful".to_owned(),
                    values: vec![1.0, 0.0],
                },
            ],
            "",
        );
        let html = svg.to_string();
        assert_eq!(heights(&svg).len(), 4);
        assert_eq!(html.matches("class=\"bar alt\"").count(), 2);
        assert!(html.contains("class=\"bar alt key\""), "the legend");
        assert!(html.contains("<summary>Show as table</summary>"));
        assert!(html.contains("<th scope=\"row\">2026-11-03</th>"));
    }

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(0.00126), "0.0013");
        assert_eq!(number(f64::NAN), "0");
        assert_eq!(with_unit(75.0, "%"), "75%");
    }
}
