//! Figures for an assistant's owners, computed from the feedback given in a window: helpful
//! rate, total and median time saved, counts per category, by assistant version and by day or
//! week. Computed here rather than in SQL because the median and the JSON category lists would
//! need different SQL on each database; a window holds at most a year of one assistant's
//! feedback.

use std::collections::BTreeMap;

use ajutant_store::FeedbackFact;
use serde::Serialize;
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;

/// The figures of one slice (everything, one version, one period).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Figures {
    /// Pieces of feedback.
    pub count: u64,
    pub helpful: u64,
    pub not_helpful: u64,
    /// helpful / (helpful + not helpful); absent when nobody said either.
    pub helpful_rate: Option<f64>,
    /// Minutes saved, over the feedback that said.
    pub time_saved_total: i64,
    pub time_saved_median: Option<f64>,
    pub serious: u64,
    pub escalated: u64,
    /// Count per category code.
    pub categories: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Tally {
    figures: Figures,
    minutes: Vec<i64>,
}

impl Tally {
    fn add(&mut self, fact: &FeedbackFact, categories: &[String]) {
        let f = &mut self.figures;
        f.count += 1;
        match fact.helpful {
            Some(true) => f.helpful += 1,
            Some(false) => f.not_helpful += 1,
            None => {}
        }
        if let Some(minutes) = fact.time_saved_minutes {
            f.time_saved_total += minutes;
            self.minutes.push(minutes);
        }
        f.serious += u64::from(fact.serious);
        f.escalated += u64::from(fact.escalated);
        for category in categories {
            *f.categories.entry(category.clone()).or_default() += 1;
        }
    }

    fn finish(mut self) -> Figures {
        let votes = self.figures.helpful + self.figures.not_helpful;
        self.figures.helpful_rate = (votes > 0).then(|| self.figures.helpful as f64 / votes as f64);
        self.figures.time_saved_median = median(&mut self.minutes);
        self.figures
    }
}

fn median(values: &mut [i64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) as f64 / 2.0
    } else {
        values[middle] as f64
    })
}

/// How the series is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    Day,
    /// ISO weeks, starting on Monday.
    Week,
}

impl Bucket {
    fn start(self, at: OffsetDateTime) -> Date {
        let day = at.to_offset(time::UtcOffset::UTC).date();
        match self {
            Self::Day => day,
            Self::Week => {
                let back = i64::from(day.weekday().number_days_from_monday());
                day - time::Duration::days(back)
            }
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionFigures {
    pub version: i64,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodFigures {
    /// The first day of the period (UTC), `YYYY-MM-DD`.
    pub start: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Everything, by version, and over time (periods with no feedback are left out).
#[derive(Debug, Serialize, ToSchema)]
pub struct Breakdown {
    pub totals: Figures,
    pub by_version: Vec<VersionFigures>,
    pub series: Vec<PeriodFigures>,
}

pub(crate) fn compute(facts: &[FeedbackFact], bucket: Bucket) -> Breakdown {
    let mut totals = Tally::default();
    let mut versions: BTreeMap<i64, Tally> = BTreeMap::new();
    let mut periods: BTreeMap<Date, Tally> = BTreeMap::new();
    for fact in facts {
        let categories: Vec<String> = serde_json::from_str(&fact.categories).unwrap_or_default();
        totals.add(fact, &categories);
        versions
            .entry(fact.assistant_version)
            .or_default()
            .add(fact, &categories);
        periods
            .entry(bucket.start(fact.created_at))
            .or_default()
            .add(fact, &categories);
    }
    Breakdown {
        totals: totals.finish(),
        by_version: versions
            .into_iter()
            .map(|(version, tally)| VersionFigures {
                version,
                figures: tally.finish(),
            })
            .collect(),
        series: periods
            .into_iter()
            .map(|(start, tally)| PeriodFigures {
                start: start.to_string(),
                figures: tally.finish(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn fact(
        at: OffsetDateTime,
        version: i64,
        helpful: Option<bool>,
        minutes: Option<i64>,
        categories: &str,
    ) -> FeedbackFact {
        FeedbackFact {
            created_at: at,
            assistant_version: version,
            helpful,
            time_saved_minutes: minutes,
            categories: categories.to_owned(),
            serious: categories.contains("privacy"),
            escalated: categories.contains("privacy"),
        }
    }

    #[test]
    fn figures_add_up_by_version_and_period() {
        let facts = vec![
            fact(
                datetime!(2026-11-02 09:00 UTC),
                1,
                Some(true),
                Some(10),
                "[]",
            ),
            fact(
                datetime!(2026-11-02 17:00 UTC),
                1,
                Some(false),
                None,
                r#"["inaccurate"]"#,
            ),
            fact(
                datetime!(2026-11-03 08:00 UTC),
                2,
                Some(true),
                Some(4),
                "[]",
            ),
            fact(
                datetime!(2026-11-09 08:00 UTC),
                2,
                None,
                Some(1),
                r#"["inaccurate","privacy"]"#,
            ),
        ];
        let days = compute(&facts, Bucket::Day);
        let totals = &days.totals;
        assert_eq!(
            (totals.count, totals.helpful, totals.not_helpful),
            (4, 2, 1)
        );
        assert_eq!(totals.helpful_rate, Some(2.0 / 3.0));
        assert_eq!(totals.time_saved_total, 15);
        assert_eq!(totals.time_saved_median, Some(4.0));
        assert_eq!(totals.categories.get("inaccurate"), Some(&2));
        assert_eq!(totals.categories.get("privacy"), Some(&1));
        assert_eq!((totals.serious, totals.escalated), (1, 1));

        let versions: Vec<(i64, u64, Option<f64>)> = days
            .by_version
            .iter()
            .map(|v| (v.version, v.figures.count, v.figures.helpful_rate))
            .collect();
        assert_eq!(versions, vec![(1, 2, Some(0.5)), (2, 2, Some(1.0))]);

        let starts: Vec<&str> = days.series.iter().map(|p| p.start.as_str()).collect();
        assert_eq!(starts, vec!["2026-11-02", "2026-11-03", "2026-11-09"]);
        assert_eq!(days.series[0].figures.time_saved_median, Some(10.0));

        // 2 and 3 November 2026 are a Monday and a Tuesday: one ISO week; the 9th starts the next.
        let weeks = compute(&facts, Bucket::Week);
        let weekly: Vec<(&str, u64)> = weeks
            .series
            .iter()
            .map(|p| (p.start.as_str(), p.figures.count))
            .collect();
        assert_eq!(weekly, vec![("2026-11-02", 3), ("2026-11-09", 1)]);
    }

    #[test]
    fn no_votes_and_no_minutes_leave_the_rates_absent() {
        let facts = vec![fact(datetime!(2026-11-02 09:00 UTC), 1, None, None, "[]")];
        let figures = compute(&facts, Bucket::Day).totals;
        assert_eq!(figures.helpful_rate, None);
        assert_eq!(figures.time_saved_median, None);
        assert_eq!(median(&mut [3, 1, 2, 10]), Some(2.5));
    }
}
