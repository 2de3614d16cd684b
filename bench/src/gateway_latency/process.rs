//! What the process costs, read from `/proc`: CPU time in all and on Ajutant's threads, and
//! resident memory.

use std::time::Duration;

use anyhow::Context;

/// `/proc` reports CPU time in USER_HZ ticks, which Linux fixes at 100 per second.
const TICK: Duration = Duration::from_millis(10);

/// CPU time of the whole process and of Ajutant's threads (its runtime's workers and blocking
/// threads, and SQLite's connection threads).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub process: Duration,
    pub ajutant: Duration,
}

impl Cpu {
    pub fn now() -> anyhow::Result<Self> {
        let process = ticks(&std::fs::read_to_string("/proc/self/stat")?)?;
        let mut ajutant = Duration::ZERO;
        for task in std::fs::read_dir("/proc/self/task")? {
            // A thread that ended since the listing has nothing left to count.
            let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
                continue;
            };
            let name = stat
                .split_once('(')
                .and_then(|(_, rest)| rest.rsplit_once(')'));
            if name.is_some_and(|(name, _)| is_ajutant_thread(name)) {
                ajutant += ticks(&stat)?;
            }
        }
        Ok(Self { process, ajutant })
    }

    pub fn since(self, earlier: Self) -> Self {
        Self {
            process: self.process.saturating_sub(earlier.process),
            ajutant: self.ajutant.saturating_sub(earlier.ajutant),
        }
    }

    pub fn add(&mut self, other: Self) {
        self.process += other.process;
        self.ajutant += other.ajutant;
    }
}

/// Thread names are cut to 15 bytes: `sqlx-sqlite-worker-3` reads `sqlx-sqlite-wor`.
fn is_ajutant_thread(name: &str) -> bool {
    name.starts_with("ajutant-server") || name.starts_with("sqlx-sqlite")
}

/// utime + stime from a `stat` line; the name in parentheses may hold spaces, so fields are
/// counted after its closing parenthesis.
fn ticks(stat: &str) -> anyhow::Result<Duration> {
    let (_, fields) = stat
        .rsplit_once(") ")
        .context("a stat line without a name")?;
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let field = |index: usize| -> anyhow::Result<u32> {
        let text = fields.get(index).context("a short stat line")?;
        Ok(text.parse()?)
    };
    Ok(TICK * (field(11)? + field(12)?))
}

/// A `/proc/self/status` size (`VmRSS`, `VmHWM`), in MiB.
pub fn memory(field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in /proc/self/status"))?;
    let kib: f64 = line.trim().trim_end_matches("kB").trim().parse()?;
    Ok(kib / 1024.0)
}
