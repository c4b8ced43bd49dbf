//! Which archives to keep, with Proxmox's prune semantics: rules are applied
//! in the order last, daily, weekly, monthly; each keeps the newest archive
//! of up to N periods, skipping periods already covered by an archive an
//! earlier rule kept. Everything not kept is pruned.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Utc};

use crate::domain::{ArchiveId, TimeZone};

#[derive(Debug, Clone, Copy, Default)]
pub struct KeepRules {
    pub last: u32,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
}

/// Names the period (day, week, …) an archive falls in.
type PeriodKey<'a> = dyn Fn(&(ArchiveId, DateTime<Utc>)) -> String + 'a;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Keep,
    Remove,
}

/// `archives` are (id, taken at); returns the ids to prune. The newest
/// archive is always kept.
pub fn to_prune(archives: &[(ArchiveId, DateTime<Utc>)], rules: KeepRules, tz: &TimeZone) -> Vec<ArchiveId> {
    let mut list: Vec<(ArchiveId, DateTime<Utc>)> = archives.to_vec();
    list.sort_by_key(|a| std::cmp::Reverse(a.1));
    let mut marks: HashMap<ArchiveId, Mark> = HashMap::new();
    let local = |t: &DateTime<Utc>| t.with_timezone(&tz.0);
    let by_id = |(id, _): &(ArchiveId, DateTime<Utc>)| id.to_string();
    let by_day = |(_, t): &(ArchiveId, DateTime<Utc>)| local(t).format("%Y-%m-%d").to_string();
    let by_week = |(_, t): &(ArchiveId, DateTime<Utc>)| {
        let w = local(t).iso_week();
        format!("{}-{}", w.year(), w.week())
    };
    let by_month = |(_, t): &(ArchiveId, DateTime<Utc>)| local(t).format("%Y-%m").to_string();
    let rules: [(Option<u32>, &PeriodKey); 4] = [
        (Some(rules.last.max(1)), &by_id),
        (rules.daily, &by_day),
        (rules.weekly, &by_week),
        (rules.monthly, &by_month),
    ];
    for (keep, key) in rules {
        let Some(keep) = keep.filter(|k| *k > 0) else { continue };
        let already: HashSet<String> = list.iter().filter(|a| marks.get(&a.0) == Some(&Mark::Keep)).map(key).collect();
        let mut periods: HashSet<String> = HashSet::new();
        for a in &list {
            if marks.contains_key(&a.0) {
                continue;
            }
            let k = key(a);
            if already.contains(&k) {
                continue;
            }
            if !periods.contains(&k) {
                if periods.len() >= keep as usize {
                    break;
                }
                periods.insert(k);
                marks.insert(a.0, Mark::Keep);
            } else {
                marks.insert(a.0, Mark::Remove);
            }
        }
    }
    list.iter().filter(|a| marks.get(&a.0) != Some(&Mark::Keep)).map(|a| a.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap().and_utc()
    }

    /// Runs the rules over archives named by their time; returns the kept times.
    fn kept(times: &[&str], rules: KeepRules) -> Vec<String> {
        let list: Vec<(ArchiveId, DateTime<Utc>)> = times.iter().map(|t| (ArchiveId::new(), at(t))).collect();
        let tz: TimeZone = "UTC".parse().unwrap();
        let gone = to_prune(&list, rules, &tz);
        let mut k: Vec<String> =
            list.iter().filter(|a| !gone.contains(&a.0)).map(|a| a.1.format("%Y-%m-%d %H:%M").to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn table() {
        let nightly = [
            "2026-10-30 02:00",
            "2026-10-31 02:00",
            "2026-11-01 02:00",
            "2026-11-02 02:00",
            "2026-11-03 02:00",
            "2026-11-03 14:00",
            "2026-11-04 02:00",
            "2026-11-05 02:00",
        ];
        let cases: Vec<(KeepRules, Vec<&str>)> = vec![
            (
                KeepRules { last: 3, ..Default::default() },
                vec!["2026-11-03 14:00", "2026-11-04 02:00", "2026-11-05 02:00"],
            ),
            // last=1 keeps 11-05; daily=3 then skips 11-05's day and keeps 11-04, 11-03 (newest of that day), 11-02.
            (
                KeepRules { last: 1, daily: Some(3), ..Default::default() },
                vec!["2026-11-02 02:00", "2026-11-03 14:00", "2026-11-04 02:00", "2026-11-05 02:00"],
            ),
            // weeks (ISO): 11-02..11-05 are week 45, 10-30..11-01 week 44.
            (
                KeepRules { last: 1, weekly: Some(2), ..Default::default() },
                vec!["2026-11-01 02:00", "2026-11-05 02:00"],
            ),
            // monthly: October's newest (10-31) is kept; November is covered by keep-last.
            (
                KeepRules { last: 1, monthly: Some(6), ..Default::default() },
                vec!["2026-10-31 02:00", "2026-11-05 02:00"],
            ),
            (
                KeepRules { last: 2, daily: Some(1), weekly: Some(1), monthly: Some(1) },
                // weekly keeps 11-01 and marks the rest of week 44 for removal, so
                // no October archive is left for monthly (marks are final, as in Proxmox).
                vec!["2026-11-01 02:00", "2026-11-03 14:00", "2026-11-04 02:00", "2026-11-05 02:00"],
            ),
        ];
        for (rules, want) in cases {
            assert_eq!(kept(&nightly, rules), want, "{rules:?}");
        }
    }

    #[test]
    fn never_prunes_the_only_archive() {
        assert_eq!(kept(&["2026-11-05 02:00"], KeepRules { last: 0, ..Default::default() }), vec!["2026-11-05 02:00"]);
        assert_eq!(kept(&[], KeepRules::default()), Vec::<String>::new());
    }
}
