//! The results as markdown tables.

use std::io::Write;
use std::time::Duration;

use ajutant_testkit::Backend;

use crate::{Args, Report};

fn ms(value: Option<Duration>) -> String {
    value.map_or("–".to_owned(), |d| {
        format!("{:.3}", d.as_secs_f64() * 1e3)
    })
}

fn added(via: Option<Duration>, direct: Option<Duration>) -> String {
    match (via, direct) {
        (Some(via), Some(direct)) => {
            format!("{:+.3}", (via.as_secs_f64() - direct.as_secs_f64()) * 1e3)
        }
        _ => "–".to_owned(),
    }
}

fn micros(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |us| format!("{us:.0}"))
}

impl Report {
    pub fn print(&self, args: &Args, backend: Backend) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "Ajutant on {backend:?}; {} sequential requests per path; {} s per rate; ms unless \
             noted; added = via − direct.\n",
            args.requests, args.seconds_per_rate
        )?;
        writeln!(
            out,
            "| upstream delay | load | direct p50 | direct p99 | via p50 | via p99 | added p50 \
             | added p99 | achieved/s direct / via | failed (timed out, not sent) direct / via \
             | CPU µs/req direct / via | Ajutant CPU µs/req |"
        )?;
        writeln!(
            out,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        for row in &self.rows {
            let (d, v) = (&row.direct, &row.via);
            let (d50, d99) = (d.percentile(0.50), d.percentile(0.99));
            let (v50, v99) = (v.percentile(0.50), v.percentile(0.99));
            let achieved = match (d.achieved, v.achieved) {
                (Some(d), Some(v)) => format!("{d:.0} / {v:.0}"),
                _ => "–".to_owned(),
            };
            writeln!(
                out,
                "| {} ms | {} | {} | {} | {} | {} | {} | {} | {achieved} | {} ({}, {}) / {} ({}, {}) \
                 | {} / {} | {} |",
                row.delay_ms,
                row.load,
                ms(d50),
                ms(d99),
                ms(v50),
                ms(v99),
                added(v50, d50),
                added(v99, d99),
                d.failed,
                d.timed_out,
                d.not_sent,
                v.failed,
                v.timed_out,
                v.not_sent,
                micros(d.cpu_per_request(|cpu| cpu.process)),
                micros(v.cpu_per_request(|cpu| cpu.process)),
                micros(v.cpu_per_request(|cpu| cpu.ajutant)),
            )?;
        }
        writeln!(
            out,
            "\nThe same requests through a bare reverse proxy (axum in, reqwest out, nothing \
             else): what an HTTP hop costs here, and what Ajutant costs beyond it.\n"
        )?;
        writeln!(
            out,
            "| upstream delay | load | proxy p50 | proxy p99 | hop added p50 (proxy − direct) \
             | hop added p99 | Ajutant over proxy p50 (via − proxy) | Ajutant over proxy p99 \
             | achieved/s proxy | failed proxy | CPU µs/req proxy |"
        )?;
        writeln!(
            out,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        for row in &self.rows {
            let (d, p, v) = (&row.direct, &row.proxy, &row.via);
            let (p50, p99) = (p.percentile(0.50), p.percentile(0.99));
            writeln!(
                out,
                "| {} ms | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.delay_ms,
                row.load,
                ms(p50),
                ms(p99),
                added(p50, d.percentile(0.50)),
                added(p99, d.percentile(0.99)),
                added(v.percentile(0.50), p50),
                added(v.percentile(0.99), p99),
                p.achieved.map_or("–".to_owned(), |a| format!("{a:.0}")),
                p.failed,
                micros(p.cpu_per_request(|cpu| cpu.process)),
            )?;
        }
        writeln!(out, "\n| where the time goes (one at a time) | p50 | p99 |")?;
        writeln!(out, "|---|---:|---:|")?;
        for step in &self.steps {
            let (p50, p99) = (step.series.percentile(0.50), step.series.percentile(0.99));
            writeln!(out, "| {} | {} | {} |", step.name, ms(p50), ms(p99))?;
        }
        writeln!(out, "\n| process resident memory (VmRSS) | MiB |")?;
        writeln!(out, "|---|---:|")?;
        writeln!(
            out,
            "| before Ajutant started (runtimes, fake) | {:.1} |",
            self.rss_before
        )?;
        writeln!(out, "| Ajutant started, idle | {:.1} |", self.rss_idle)?;
        writeln!(
            out,
            "| Ajutant's share when idle (idle − before) | {:.1} |",
            self.rss_idle - self.rss_before
        )?;
        for row in &self.rows {
            if let (Some(d), Some(v)) = (row.direct.rss, row.via.rss) {
                writeln!(
                    out,
                    "| {}, {} ms delay, as the last request was sent: direct / via \
                     | {d:.1} / {v:.1} |",
                    row.load, row.delay_ms
                )?;
            }
        }
        // VmHWM is updated lazily and can trail a sample read a moment before.
        let peak = self
            .rows
            .iter()
            .flat_map(|row| [row.direct.rss, row.via.rss])
            .flatten()
            .fold(self.rss_peak, f64::max);
        writeln!(out, "| peak (VmHWM) | {peak:.1} |")?;
        Ok(())
    }
}
