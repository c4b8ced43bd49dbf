//! A host's history drawn on the server as plain SVG: a line per figure on
//! a fixed 0–100 % scale, and a strip for whether the host answered. No
//! script and no inline style (the CSP forbids both): presentation
//! attributes and classes from style.css only. Time runs left to right on
//! a real clock, so a gap in the probes shows as a gap in the line.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::db::monitoring::Sample;
use crate::domain::Timestamp;
use crate::web::view::{duration, pct};

/// Points drawn across the width at most; denser history is averaged.
const MAX_SLOTS: i64 = 360;
/// The window is at least this many probe intervals wide, so the first
/// few probes of a new host do not fill the whole width.
const MIN_INTERVALS: i64 = 20;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Chart geometry (viewBox units): the plot area inside the labels.
const W: f64 = 560.0;
const H: f64 = 150.0;
const X0: f64 = 34.0;
const X1: f64 = W - 8.0;
const Y0: f64 = 8.0;
const Y1: f64 = H - 22.0;
/// The reachability strip spans two charts' width.
const STRIP_W: f64 = 1120.0;
const STRIP_X1: f64 = STRIP_W - 8.0;
const STRIP_H: f64 = 52.0;
const STRIP_Y0: f64 = 6.0;
const STRIP_Y1: f64 = 30.0;

/// Whether a host answered: both probes, one of them, or none. Ordered
/// from best to worst, so the worst of a slot is its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Both,
    One,
    Nothing,
}

impl Answer {
    fn of(s: &Sample) -> Answer {
        let parts: Vec<f64> = [s.api_up, s.ssh_up].into_iter().flatten().collect();
        if !parts.is_empty() && parts.iter().all(|v| *v >= 0.999) {
            Answer::Both
        } else if parts.iter().any(|v| *v > 0.0) {
            Answer::One
        } else {
            Answer::Nothing
        }
    }

    fn class(self) -> &'static str {
        match self {
            Answer::Both => "r-up",
            Answer::One => "r-degraded",
            Answer::Nothing => "r-down",
        }
    }
}

/// A figure of a sample.
#[derive(Debug, Clone, Copy)]
pub enum Figure {
    Cpu,
    Memory,
    Disk,
    Backup,
}

impl Figure {
    fn index(self) -> usize {
        self as usize
    }

    fn of(self, s: &Sample) -> Option<f64> {
        match self {
            Figure::Cpu => s.cpu_pct,
            Figure::Memory => s.mem_pct,
            Figure::Disk => s.disk_pct,
            Figure::Backup => s.backup_pct,
        }
    }
}

/// One line of a chart: its CSS class, its name in the legend, its figure.
pub struct Series {
    pub class: &'static str,
    pub name: &'static str,
    pub figure: Figure,
}

/// The samples of one slot of the window, summed up.
#[derive(Debug, Clone)]
struct Slot {
    index: i64,
    /// Mean time of its samples (ms).
    t: f64,
    n: usize,
    sums: [f64; 4],
    counts: [usize; 4],
    worst: Answer,
}

impl Slot {
    fn mean(&self, f: Figure) -> Option<f64> {
        let i = f.index();
        (self.counts[i] > 0).then(|| self.sums[i] / self.counts[i] as f64)
    }
}

/// The history of one host laid out on a time axis.
pub struct History {
    start: i64,
    end: i64,
    slot_ms: i64,
    /// Two points further apart than this are not joined: probes are missing.
    gap_ms: f64,
    slots: Vec<Slot>,
    /// The newest sample's figures (what "now" says).
    latest: Option<Sample>,
}

impl History {
    /// `samples` oldest first; None when there is nothing to draw.
    pub fn new(samples: &[Sample], now: Timestamp, interval: Duration) -> Option<History> {
        let first = samples.first()?;
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(60_000).max(1000);
        let end = now.millis().max(samples.iter().map(|s| s.at.millis()).max().unwrap_or(0));
        let start = first.at.millis().min(end - interval_ms * MIN_INTERVALS).max(end - DAY_MS);
        let slot_ms = ((end - start) / MAX_SLOTS).max(interval_ms);
        let span_ms = samples.iter().map(|s| s.span_secs * 1000).max().unwrap_or(0);
        let gap_ms = (3 * interval_ms).max(3 * slot_ms).max(2 * span_ms) as f64;
        let mut slots: Vec<Slot> = Vec::new();
        for s in samples.iter().filter(|s| s.at.millis() >= start) {
            let index = (s.at.millis() - start) / slot_ms;
            if slots.last().is_none_or(|l| l.index != index) {
                slots.push(Slot { index, t: 0.0, n: 0, sums: [0.0; 4], counts: [0; 4], worst: Answer::Both });
            }
            let Some(slot) = slots.last_mut() else { continue };
            slot.t += s.at.millis() as f64;
            slot.n += 1;
            for f in [Figure::Cpu, Figure::Memory, Figure::Disk, Figure::Backup] {
                if let Some(v) = f.of(s).filter(|v| v.is_finite()) {
                    slot.sums[f.index()] += v.clamp(0.0, 100.0);
                    slot.counts[f.index()] += 1;
                }
            }
            slot.worst = slot.worst.max(Answer::of(s));
        }
        for slot in &mut slots {
            slot.t /= slot.n.max(1) as f64;
        }
        Some(History { start, end, slot_ms, gap_ms, slots, latest: samples.last().cloned() })
    }

    /// "last 24 h", or "since 14:02 UTC" for a shorter history.
    pub fn span_label(&self) -> String {
        if self.end - self.start >= DAY_MS - self.slot_ms {
            "last 24 h".into()
        } else {
            format!("since {}", self.clock(self.start as f64))
        }
    }

    /// Where time `t` falls on a plot from X0 to `x1`.
    fn x(&self, t: f64, x1: f64) -> f64 {
        let width = (self.end - self.start).max(1) as f64;
        X0 + (t - self.start as f64) / width * (x1 - X0)
    }

    fn clock(&self, t: f64) -> String {
        let at = DateTime::<Utc>::from_timestamp_millis(t as i64).unwrap_or_default();
        if self.end - self.start < 3600 * 1000 {
            at.format("%H:%M:%S UTC").to_string()
        } else {
            at.format("%H:%M UTC").to_string()
        }
    }

    /// Time labels at baseline `y` under a plot from X0 to `x1`.
    fn time_axis(&self, y: f64, x1: f64) -> Markup {
        let mid = (self.start + self.end) as f64 / 2.0;
        html! {
            text.axis x=(num(X0)) y=(num(y)) { (self.clock(self.start as f64)) }
            text.axis x=(num(self.x(mid, x1))) y=(num(y)) text-anchor="middle" { (self.clock(mid)) }
            text.axis x=(num(x1)) y=(num(y)) text-anchor="end" { "now" }
        }
    }

    /// A chart of `series` in per cent, with the alert threshold dashed.
    /// Says so instead when none of its figures was ever reported.
    pub fn line_chart(&self, title: &str, series: &[Series], threshold: Option<f64>) -> Markup {
        let values = |f: Figure| self.slots.iter().filter_map(move |s| s.mean(f));
        let any = series.iter().any(|s| values(s.figure).next().is_some());
        let y = |v: f64| Y1 - v.clamp(0.0, 100.0) / 100.0 * (Y1 - Y0);
        let summary: Vec<String> = series
            .iter()
            .filter_map(|s| {
                let now = self.latest.as_ref().and_then(|l| s.figure.of(l));
                let peak = values(s.figure).fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
                let lead = if series.len() > 1 { format!("{} ", s.name) } else { String::new() };
                Some(match now {
                    Some(n) => format!("{lead}{} now, peak {}", pct(n), pct(peak)),
                    None => format!("{lead}peak {}", pct(peak)),
                })
            })
            .collect();
        html! {
            figure.hchart {
                figcaption {
                    strong { (title) }
                    @if !summary.is_empty() { " " span.muted { (summary.join(" · ")) } }
                }
                @if !any {
                    p.muted.nodata { "No figures in this window: the Proxmox API did not answer or is not configured." }
                } @else {
                    svg.hchart viewBox={ "0 0 " (W) " " (H) } role="img"
                        aria-label={ (title) ", " (self.span_label()) ": " (summary.join("; ")) } {
                        rect.plot x=(num(X0)) y=(num(Y0)) width=(num(X1 - X0)) height=(num(Y1 - Y0)) {}
                        @for v in [0.0, 50.0, 100.0] {
                            line.grid x1=(num(X0)) x2=(num(X1)) y1=(num(y(v))) y2=(num(y(v))) {}
                            text.axis x=(num(X0 - 4.0)) y=(num(y(v) + 4.0)) text-anchor="end" { (v) }
                        }
                        @if let Some(t) = threshold {
                            line.threshold x1=(num(X0)) x2=(num(X1)) y1=(num(y(t))) y2=(num(y(t))) {}
                            text.threshold-label x=(num(X1 - 3.0)) y=(num(if t > 85.0 { y(t) + 12.0 } else { y(t) - 4.0 }))
                                text-anchor="end" { "alert above " (pct(t)) }
                        }
                        @for s in series {
                            @for seg in self.segments(s.figure) {
                                @if seg.len() == 1 {
                                    circle class={ "point " (s.class) } cx=(num(seg[0].0)) cy=(num(y(seg[0].1))) r="2.5" {}
                                } @else {
                                    polyline class={ "series " (s.class) } points=(points(&seg, y)) {}
                                }
                            }
                        }
                        (self.time_axis(H - 6.0, X1))
                    }
                    @if series.len() > 1 {
                        div.legend { @for s in series { span { span class={ "key " (s.class) } {} (s.name) } } }
                    }
                }
            }
        }
    }

    /// Runs of (x, value) with no gap in the probes.
    fn segments(&self, f: Figure) -> Vec<Vec<(f64, f64)>> {
        let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut last_t: Option<f64> = None;
        for slot in &self.slots {
            let Some(v) = slot.mean(f) else {
                last_t = None;
                continue;
            };
            let joined = last_t.is_some_and(|t| slot.t - t <= self.gap_ms);
            match out.last_mut() {
                Some(seg) if joined => seg.push((self.x(slot.t, X1), v)),
                _ => out.push(vec![(self.x(slot.t, X1), v)]),
            }
            last_t = Some(slot.t);
        }
        out
    }

    /// Whether the host answered, slot by slot: green both probes, amber
    /// one of them, red none; blank where there was no probe.
    pub fn reachability_strip(&self) -> Markup {
        let runs = self.runs();
        let total = |a: Answer| {
            let ms: f64 = runs.iter().filter(|r| r.2 == a).map(|r| r.1 - r.0).sum();
            duration((ms / 1000.0).round() as i64)
        };
        let has = |a: Answer| runs.iter().any(|r| r.2 == a);
        let summary = if has(Answer::Nothing) {
            format!("no answer for about {}", total(Answer::Nothing))
        } else if has(Answer::One) {
            format!("API or ssh only for about {}", total(Answer::One))
        } else {
            "answered every probe".to_string()
        };
        html! {
            figure.hchart.wide {
                figcaption { strong { "Reachability" } " " span.muted { (summary) } }
                svg.hchart.strip viewBox={ "0 0 " (STRIP_W) " " (STRIP_H) } role="img"
                    aria-label={ "Reachability, " (self.span_label()) ": " (summary) } {
                    rect.plot x=(num(X0)) y=(num(STRIP_Y0)) width=(num(STRIP_X1 - X0)) height=(num(STRIP_Y1 - STRIP_Y0)) {}
                    @for (from, to, answer) in &runs {
                        @let (x, x_end) = (self.x(*from, STRIP_X1).max(X0), self.x(*to, STRIP_X1).min(STRIP_X1));
                        rect class=(answer.class()) x=(num(x)) y=(num(STRIP_Y0)) width=(num((x_end - x).max(0.6)))
                            height=(num(STRIP_Y1 - STRIP_Y0)) {}
                    }
                    (self.time_axis(STRIP_H - 6.0, STRIP_X1))
                }
                div.legend {
                    span { span.key.r-up {} "answered" }
                    span { span.key.r-degraded {} "API or ssh only" }
                    span { span.key.r-down {} "no answer" }
                    span { span.key.none {} "no probe" }
                }
            }
        }
    }

    /// Runs of slots with the same answer and no gap in the probes, as
    /// (from, to, answer), times in ms: one rectangle each, so a steady
    /// stretch has no seams.
    fn runs(&self) -> Vec<(f64, f64, Answer)> {
        let mut out: Vec<(f64, f64, Answer)> = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let from = (self.start + slot.index * self.slot_ms) as f64;
            let own_end = from + self.slot_ms as f64;
            let next = self.slots.get(i + 1).map(|n| (self.start + n.index * self.slot_ms) as f64);
            let to = match next {
                Some(n) if n - own_end <= self.gap_ms => n,
                _ => own_end,
            };
            match out.last_mut() {
                Some(last) if last.2 == slot.worst && (last.1 - from).abs() < 1.0 => last.1 = to,
                _ => out.push((from, to, slot.worst)),
            }
        }
        out
    }
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

fn points(seg: &[(f64, f64)], y: impl Fn(f64) -> f64) -> String {
    let mut out = String::with_capacity(seg.len() * 12);
    for (x, v) in seg {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{x:.1},{:.1}", y(*v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: i64, cpu: Option<f64>, api: f64, ssh: f64) -> Sample {
        Sample { at: Timestamp(at_ms), api_up: Some(api), ssh_up: Some(ssh), cpu_pct: cpu, ..Default::default() }
    }

    #[test]
    fn a_gap_in_the_probes_breaks_the_line() {
        let now = 10_000_000;
        let mut s: Vec<Sample> = (0..10).map(|i| sample(now - 600_000 + i * 60_000, Some(10.0), 1.0, 1.0)).collect();
        // Nothing for 20 minutes, then probes again.
        s.extend((0..5).map(|i| sample(now + 600_000 + i * 60_000, Some(50.0), 1.0, 1.0)));
        let h = History::new(&s, Timestamp(now + 900_000), Duration::from_secs(60)).unwrap();
        let segs = h.segments(Figure::Cpu);
        assert_eq!(segs.len(), 2, "{segs:?}");
        assert_eq!((segs[0].len(), segs[1].len()), (10, 5));
        assert!(segs[0].iter().all(|(x, _)| (X0..=X1).contains(x)));
    }

    #[test]
    fn a_day_of_probes_is_averaged_to_a_few_hundred_points() {
        let now = 100 * DAY_MS;
        let s: Vec<Sample> =
            (0..8640).map(|i| sample(now - DAY_MS + i * 10_000, Some((i % 100) as f64), 1.0, 1.0)).collect();
        let h = History::new(&s, Timestamp(now), Duration::from_secs(10)).unwrap();
        assert!(h.slots.len() <= MAX_SLOTS as usize + 1, "{}", h.slots.len());
        assert_eq!(h.segments(Figure::Cpu).len(), 1);
        assert_eq!(h.span_label(), "last 24 h");
        let svg = h.line_chart("CPU", &[Series { class: "s1", name: "CPU", figure: Figure::Cpu }], Some(90.0));
        let svg = svg.into_string();
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(!svg.contains("style="), "no inline style: the CSP forbids it");
    }

    #[test]
    fn the_worst_answer_of_a_slot_colours_it() {
        assert_eq!(Answer::of(&sample(0, None, 1.0, 1.0)), Answer::Both);
        assert_eq!(Answer::of(&sample(0, None, 0.0, 1.0)), Answer::One);
        assert_eq!(Answer::of(&sample(0, None, 0.0, 0.0)), Answer::Nothing);
        let no_api = Sample { api_up: None, ssh_up: Some(1.0), ..Default::default() };
        assert_eq!(Answer::of(&no_api), Answer::Both, "a host without an API token answers by ssh alone");
        let now = 1_000_000;
        let s = vec![sample(now - 2000, None, 1.0, 1.0), sample(now - 1000, None, 0.0, 0.0)];
        let h = History::new(&s, Timestamp(now), Duration::from_secs(60)).unwrap();
        assert_eq!(h.slots.len(), 1);
        assert_eq!(h.slots[0].worst, Answer::Nothing);
    }

    #[test]
    fn a_steady_stretch_is_one_block_and_an_outage_its_own() {
        let now = 10_000_000;
        let mut s: Vec<Sample> = (0..30).map(|i| sample(now - 60_000 + i * 1_000, None, 1.0, 1.0)).collect();
        s[10] = sample(now - 50_000, None, 0.0, 0.0);
        s[11] = sample(now - 49_000, None, 0.0, 0.0);
        let h = History::new(&s, Timestamp(now), Duration::from_secs(1)).unwrap();
        let answers: Vec<Answer> = h.runs().iter().map(|r| r.2).collect();
        assert_eq!(answers, [Answer::Both, Answer::Nothing, Answer::Both]);
        let strip = h.reachability_strip().into_string();
        assert!(strip.contains("no answer for about 2 s"), "{strip}");
    }

    #[test]
    fn nothing_to_draw_without_samples() {
        assert!(History::new(&[], Timestamp(0), Duration::from_secs(60)).is_none());
    }
}
