//! The alert rules, one story per verdict: a host, its probes, its pairs
//! and their tasks are built in memory and `evaluate` says what fires.

use super::*;
use crate::domain::{Compress, Guest, HypervisorId, HypervisorRole, Mode, TaskId, TaskKind, Vmid};

/// A fixed "now", so ages are exact.
const NOW: Timestamp = Timestamp(1_800_000_000_000);
const TOLERANCE: Duration = Duration::from_secs(60);
/// Seconds between two probes in the stories below.
const PROBE_EVERY: i64 = 30;

fn ago(secs: i64) -> Timestamp {
    NOW.plus_millis(-secs * 1000)
}

fn settings() -> AlertSettings {
    AlertSettings { cpu_pct: 90.0, mem_pct: 85.0, disk_pct: 80.0, samples: 3, tolerance_secs: None }
}

fn hypervisor(name: &str) -> Hypervisor {
    Hypervisor {
        id: HypervisorId::new(),
        name: name.to_string(),
        host: "10.0.0.1".parse().unwrap(),
        ssh_port: 22,
        ssh_user: "root".parse().unwrap(),
        node: "pve1".parse().unwrap(),
        role: HypervisorRole::Dc,
        api_port: 8006,
        api_token_id: None,
        has_api_token_secret: false,
        tls_fingerprint: None,
        dump_dir: "/var/lib/vz/dump".parse().unwrap(),
        restore_storage: "local-lvm".parse().unwrap(),
        enabled: true,
        bwlimit_kib: None,
        host_key_fingerprint: None,
        host_key: None,
        api_token_secret_enc: None,
        created_at: ago(86_400),
        updated_at: ago(86_400),
    }
}

/// Health whose newest probe was now; `last_good` in seconds ago.
fn health(api_up: bool, ssh_up: bool, last_good: Option<i64>, first_probe: i64) -> Health {
    Health {
        hypervisor_id: HypervisorId::new(),
        first_probe_at: ago(first_probe),
        last_probe_at: NOW,
        last_good_at: last_good.map(ago),
        api_up,
        ssh_up,
        api_detail: String::new(),
        ssh_detail: String::new(),
    }
}

fn answering() -> Health {
    health(true, true, Some(0), 3600)
}

/// A host that answered until `secs` ago and has been silent since.
fn silent_for_secs(secs: i64) -> Health {
    health(false, false, Some(secs), 3600)
}

fn all_running() -> BTreeMap<String, String> {
    WATCHED_SERVICES.iter().map(|s| (s.to_string(), "running".to_string())).collect()
}

/// A probe where both the API and ssh answered, with calm figures.
fn healthy() -> Sample {
    Sample {
        api_up: Some(1.0),
        ssh_up: Some(1.0),
        cpu_pct: Some(10.0),
        mem_pct: Some(20.0),
        mem_free_bytes: Some(1 << 30),
        disk_pct: Some(30.0),
        backup_pct: Some(40.0),
        services: Some(all_running()),
        ..Default::default()
    }
}

/// A probe where nothing answered: no figures, no services.
fn silent() -> Sample {
    Sample { api_up: Some(0.0), ssh_up: Some(0.0), ..Default::default() }
}

/// Only ssh answered: backup storage is known, the API figures are not.
fn ssh_only() -> Sample {
    Sample { api_up: Some(0.0), ssh_up: Some(1.0), backup_pct: Some(40.0), ..Default::default() }
}

fn with_service(sample: Sample, service: &str, state: &str) -> Sample {
    let mut services = sample.services.clone().unwrap_or_default();
    services.insert(service.to_string(), state.to_string());
    Sample { services: Some(services), ..sample }
}

fn with_mem(pct: f64) -> Sample {
    Sample { mem_pct: Some(pct), ..healthy() }
}

fn with_backup(pct: f64) -> Sample {
    Sample { backup_pct: Some(pct), ..healthy() }
}

/// Probes listed newest first, stamped `PROBE_EVERY` seconds apart.
fn newest_first(samples: impl IntoIterator<Item = Sample>) -> Vec<Sample> {
    (0..).zip(samples).map(|(i, s)| Sample { at: ago(i * PROBE_EVERY), ..s }).collect()
}

fn pair(name: &str, rpo_target_secs: i64, created_secs_ago: i64) -> Pair {
    Pair {
        id: PairId::new(),
        name: name.to_string(),
        src_hypervisor_id: HypervisorId::new(),
        src_vmid: Vmid::try_from(100).unwrap(),
        dst_hypervisor_id: Some(HypervisorId::new()),
        dst_vmid: Vmid::try_from(100).unwrap(),
        guest: Guest::Qemu,
        compress: Compress::Zstd,
        mode: Mode::Snapshot,
        start_after_restore: false,
        keep_last: 3,
        keep_daily: None,
        keep_weekly: None,
        keep_monthly: None,
        auto_failover: false,
        enabled: true,
        rpo_target_secs,
        drill_vmid: None,
        network_map: Default::default(),
        shutdown_returned_source: false,
        transfer: crate::domain::Transfer::Staged,
        fleecing_storage: None,
        state: crate::domain::PairState::Protected,
        adopted: false,
        replica_archive_id: None,
        replica_task_id: None,
        replica_marker: "cafe0001".to_string(),
        created_at: ago(created_secs_ago),
        updated_at: ago(created_secs_ago),
    }
}

fn ended_task(pair_id: PairId, kind: TaskKind, status: TaskStatus, error: Option<&str>) -> Task {
    Task {
        id: TaskId::new(),
        kind,
        pair_id,
        status,
        phase: status.to_string(),
        progress: 100,
        bytes_done: 0,
        bytes_total: 0,
        rate_bps: None,
        eta_secs: None,
        archive_id: None,
        schedule_id: None,
        requested_by: "schedule".to_string(),
        attempt: 1,
        max_attempts: 1,
        created_at: ago(600),
        started_at: Some(ago(590)),
        finished_at: Some(ago(60)),
        error: error.map(str::to_string),
        error_kind: None,
        seq: 1,
        src_hypervisor_id: None,
        dst_hypervisor_id: None,
        cancel_requested: false,
        force: false,
        resume_dump: None,
    }
}

/// Everything `evaluate` reads, owned, for one watched host.
struct World {
    settings: AlertSettings,
    host: Hypervisor,
    health: Option<Health>,
    recent: Vec<Sample>,
    pairs: Vec<Pair>,
    archives: HashMap<PairId, Timestamp>,
    outcomes: Vec<Task>,
}

impl World {
    /// A host called dc1 that has answered every probe.
    fn new() -> Self {
        let mut w = Self {
            settings: settings(),
            host: hypervisor("dc1"),
            health: None,
            recent: newest_first([healthy(), healthy(), healthy()]),
            pairs: Vec::new(),
            archives: HashMap::new(),
            outcomes: Vec::new(),
        };
        w.set_health(answering());
        w
    }

    fn set_health(&mut self, h: Health) {
        self.health = Some(Health { hypervisor_id: self.host.id, ..h });
    }

    fn probes(&mut self, samples: impl IntoIterator<Item = Sample>) {
        self.recent = newest_first(samples);
    }

    fn verdicts(&self) -> BTreeMap<String, Verdict> {
        evaluate(&Inputs {
            now: NOW,
            settings: &self.settings,
            tolerance: TOLERANCE,
            hosts: vec![HostView { host: &self.host, health: self.health.as_ref(), recent: &self.recent }],
            pairs: &self.pairs,
            newest_archive: &self.archives,
            outcomes: &self.outcomes,
        })
    }

    fn verdict(&self, key: &str) -> Verdict {
        let all = self.verdicts();
        all.get(key).cloned().unwrap_or_else(|| panic!("no verdict under {key}; keys: {:?}", all.keys()))
    }

    fn host_down(&self) -> Verdict {
        self.verdict(&format!("host_down:{}", self.host.id))
    }

    fn service(&self, service: &str) -> Verdict {
        self.verdict(&format!("service_down:{}:{service}", self.host.id))
    }

    fn metric(&self, metric: &str) -> Verdict {
        self.verdict(&format!("metric_high:{}:{metric}", self.host.id))
    }
}

fn firing(v: Verdict) -> Draft {
    match v {
        Verdict::Firing(d) => d,
        other => panic!("expected Firing, got {other:?}"),
    }
}

fn cleared(v: Verdict) -> String {
    match v {
        Verdict::Clear(why) => why,
        other => panic!("expected Clear, got {other:?}"),
    }
}

// --- reachability ----------------------------------------------------------

#[test]
fn a_host_without_health_is_unchecked() {
    assert_eq!(reachability(None, NOW, TOLERANCE), Reachability::Unchecked);
}

#[test]
fn a_host_answering_api_and_ssh_is_up() {
    assert_eq!(reachability(Some(&answering()), NOW, TOLERANCE), Reachability::Up);
}

#[test]
fn a_host_answering_only_one_way_is_degraded() {
    let api_only = health(true, false, Some(0), 3600);
    let ssh_only = health(false, true, Some(0), 3600);
    assert_eq!(reachability(Some(&api_only), NOW, TOLERANCE), Reachability::Degraded);
    assert_eq!(reachability(Some(&ssh_only), NOW, TOLERANCE), Reachability::Degraded);
}

#[test]
fn a_host_silent_within_the_tolerance_is_unreachable() {
    assert_eq!(reachability(Some(&silent_for_secs(30)), NOW, TOLERANCE), Reachability::Unreachable);
    // Exactly the tolerance is not yet longer than it.
    assert_eq!(reachability(Some(&silent_for_secs(60)), NOW, TOLERANCE), Reachability::Unreachable);
}

#[test]
fn a_host_silent_past_the_tolerance_is_down() {
    assert_eq!(reachability(Some(&silent_for_secs(61)), NOW, TOLERANCE), Reachability::Down);
    assert_eq!(reachability(Some(&silent_for_secs(3600)), NOW, TOLERANCE), Reachability::Down);
}

#[test]
fn a_host_that_never_answered_counts_from_its_first_probe() {
    let fresh = health(false, false, None, 30);
    let long_ago = health(false, false, None, 120);
    assert_eq!(reachability(Some(&fresh), NOW, TOLERANCE), Reachability::Unreachable);
    assert_eq!(reachability(Some(&long_ago), NOW, TOLERANCE), Reachability::Down);
}

#[test]
fn a_last_good_probe_in_the_future_does_not_count_as_down() {
    // Clocks of two processes may disagree by a little.
    let h = health(false, false, Some(-5), 3600);
    assert_eq!(reachability(Some(&h), NOW, TOLERANCE), Reachability::Unreachable);
}

// --- host_down -------------------------------------------------------------

#[test]
fn host_down_fires_once_silent_past_the_tolerance() {
    let mut w = World::new();
    w.set_health(silent_for_secs(125));
    w.probes([silent(), silent(), silent()]);
    let d = firing(w.host_down());
    assert_eq!(d.kind, AlertKind::HostDown);
    assert_eq!(d.subject_type, "hypervisor");
    assert_eq!(d.subject_id, w.host.id.to_string());
    assert_eq!(d.subject_name, "dc1");
    assert_eq!(d.message, "dc1 has not answered for 125 s.");
}

#[test]
fn host_down_fires_for_a_host_that_never_answered() {
    let mut w = World::new();
    w.set_health(health(false, false, None, 90));
    w.probes([silent(), silent(), silent()]);
    assert_eq!(firing(w.host_down()).message, "dc1 has not answered for 90 s.");
}

#[test]
fn host_down_holds_while_silent_within_the_tolerance() {
    let mut w = World::new();
    w.set_health(silent_for_secs(45));
    w.probes([silent(), healthy(), healthy()]);
    assert_eq!(w.host_down(), Verdict::Hold);
}

#[test]
fn host_down_clears_when_the_newest_samples_all_answer() {
    let mut w = World::new();
    w.probes([healthy(), healthy(), healthy(), silent(), silent()]);
    assert_eq!(cleared(w.host_down()), "dc1 answers again");
}

#[test]
fn host_down_clears_when_only_ssh_answers() {
    let mut w = World::new();
    w.set_health(health(false, true, Some(0), 3600));
    w.probes([ssh_only(), ssh_only(), ssh_only()]);
    assert_eq!(cleared(w.host_down()), "dc1 answers again");
}

#[test]
fn host_down_holds_while_a_returning_host_flaps() {
    let mut w = World::new();
    w.probes([healthy(), silent(), healthy()]);
    assert_eq!(w.host_down(), Verdict::Hold);
    w.probes([healthy(), healthy(), silent()]);
    assert_eq!(w.host_down(), Verdict::Hold);
}

#[test]
fn host_down_holds_with_fewer_samples_than_required() {
    let mut w = World::new();
    w.probes([healthy(), healthy()]);
    assert_eq!(w.host_down(), Verdict::Hold);
}

#[test]
fn host_down_follows_the_configured_number_of_samples() {
    let mut w = World::new();
    w.settings.samples = 5;
    w.probes([healthy(), healthy(), healthy(), healthy(), silent()]);
    assert_eq!(w.host_down(), Verdict::Hold);
    w.settings.samples = 1;
    w.probes([healthy(), silent(), silent()]);
    assert_eq!(cleared(w.host_down()), "dc1 answers again");
}

#[test]
fn zero_samples_in_the_settings_count_as_one() {
    let mut w = World::new();
    w.settings.samples = 0;
    w.probes([healthy(), silent()]);
    assert_eq!(cleared(w.host_down()), "dc1 answers again");
}

#[test]
fn an_unchecked_host_without_samples_holds() {
    let mut w = World::new();
    w.health = None;
    w.probes([]);
    assert_eq!(w.host_down(), Verdict::Hold);
}

// --- service_down ----------------------------------------------------------

#[test]
fn service_down_fires_when_a_service_is_not_running_in_every_sample() {
    let mut w = World::new();
    w.probes([
        with_service(healthy(), "pvedaemon", "dead"),
        with_service(healthy(), "pvedaemon", "failed"),
        with_service(healthy(), "pvedaemon", "dead"),
    ]);
    let key = format!("service_down:{}:pvedaemon", w.host.id);
    let d = firing(w.verdict(&key));
    assert_eq!(d.kind, AlertKind::ServiceDown);
    assert_eq!(d.subject_type, "hypervisor");
    assert_eq!(d.subject_id, w.host.id.to_string());
    assert_eq!(d.message, "pvedaemon on dc1 is dead (for 3 samples).");
    // The others run and stay quiet.
    assert!(matches!(w.service("pveproxy"), Verdict::Clear(_)));
    assert!(matches!(w.service("sshd"), Verdict::Clear(_)));
}

#[test]
fn service_down_holds_while_a_service_flaps() {
    let mut w = World::new();
    w.probes([with_service(healthy(), "pvedaemon", "dead"), healthy(), with_service(healthy(), "pvedaemon", "dead")]);
    assert_eq!(w.service("pvedaemon"), Verdict::Hold);
}

#[test]
fn service_down_clears_when_the_service_runs_in_every_sample() {
    let w = World::new();
    assert_eq!(cleared(w.service("pvedaemon")), "pvedaemon on dc1 runs again");
}

#[test]
fn service_down_holds_while_the_api_does_not_answer() {
    let mut w = World::new();
    w.set_health(health(false, true, Some(0), 3600));
    w.probes([
        ssh_only(),
        with_service(healthy(), "pvedaemon", "dead"),
        with_service(healthy(), "pvedaemon", "dead"),
        with_service(healthy(), "pvedaemon", "dead"),
    ]);
    assert_eq!(w.service("pvedaemon"), Verdict::Hold);
    w.probes([ssh_only(), healthy(), healthy()]);
    assert_eq!(w.service("pvedaemon"), Verdict::Hold);
}

#[test]
fn service_down_holds_with_fewer_samples_than_required() {
    let mut w = World::new();
    w.probes([with_service(healthy(), "pvedaemon", "dead"), with_service(healthy(), "pvedaemon", "dead")]);
    assert_eq!(w.service("pvedaemon"), Verdict::Hold);
}

#[test]
fn service_down_looks_only_at_the_newest_samples() {
    let mut w = World::new();
    w.probes([
        with_service(healthy(), "pvestatd", "dead"),
        with_service(healthy(), "pvestatd", "dead"),
        with_service(healthy(), "pvestatd", "dead"),
        healthy(),
    ]);
    assert!(matches!(w.service("pvestatd"), Verdict::Firing(_)));
}

#[test]
fn every_watched_service_gets_a_verdict() {
    let w = World::new();
    let verdicts = w.verdicts();
    for service in WATCHED_SERVICES {
        assert!(verdicts.contains_key(&format!("service_down:{}:{service}", w.host.id)), "{service}");
    }
}

// --- metric_high -----------------------------------------------------------

#[test]
fn metric_high_fires_when_memory_stays_above_its_threshold() {
    let mut w = World::new();
    w.probes([with_mem(95.4), with_mem(90.0), with_mem(86.0)]);
    let key = format!("metric_high:{}:memory", w.host.id);
    let d = firing(w.verdict(&key));
    assert_eq!(d.kind, AlertKind::MetricHigh);
    assert_eq!(d.subject_type, "hypervisor");
    assert_eq!(d.subject_id, w.host.id.to_string());
    assert_eq!(d.message, "memory of dc1 at 95 % for 3 samples (threshold 85 %).");
    assert!(matches!(w.metric("cpu"), Verdict::Clear(_)));
}

#[test]
fn metric_high_holds_when_one_sample_dips_below() {
    let mut w = World::new();
    w.probes([with_mem(95.0), with_mem(80.0), with_mem(95.0)]);
    assert_eq!(w.metric("memory"), Verdict::Hold);
}

#[test]
fn metric_high_clears_at_or_below_the_threshold() {
    let mut w = World::new();
    w.probes([with_mem(85.0), with_mem(70.0), with_mem(84.9)]);
    assert_eq!(cleared(w.metric("memory")), "memory of dc1 back at 85 %");
}

#[test]
fn metric_high_holds_with_fewer_samples_than_required() {
    let mut w = World::new();
    w.probes([with_mem(95.0), with_mem(95.0)]);
    assert_eq!(w.metric("memory"), Verdict::Hold);
    // A sample where the API did not answer carries no figure.
    w.probes([ssh_only(), with_mem(95.0), with_mem(95.0), with_mem(95.0)]);
    assert_eq!(w.metric("memory"), Verdict::Hold);
}

#[test]
fn backup_storage_uses_the_disk_threshold() {
    let mut w = World::new();
    w.probes([with_backup(81.0), with_backup(81.0), with_backup(81.0)]);
    let key = format!("metric_high:{}:backup_storage", w.host.id);
    let d = firing(w.verdict(&key));
    assert_eq!(d.message, "backup storage of dc1 at 81 % for 3 samples (threshold 80 %).");
    // 81 % is below the memory and CPU thresholds, so only the disk one fired;
    // at it, storage is fine.
    w.probes([with_backup(80.0), with_backup(80.0), with_backup(80.0)]);
    assert!(matches!(w.verdict(&key), Verdict::Clear(_)));
}

#[test]
fn backup_storage_is_judged_from_ssh_alone() {
    let mut w = World::new();
    let full = Sample { backup_pct: Some(99.0), ..ssh_only() };
    w.probes([full.clone(), full.clone(), full]);
    assert!(matches!(w.metric("backup_storage"), Verdict::Firing(_)));
    assert_eq!(w.metric("memory"), Verdict::Hold);
}

#[test]
fn cpu_and_root_disk_use_their_own_thresholds() {
    let mut w = World::new();
    let busy = Sample { cpu_pct: Some(91.0), disk_pct: Some(79.0), ..healthy() };
    w.probes([busy.clone(), busy.clone(), busy]);
    assert!(matches!(w.metric("cpu"), Verdict::Firing(_)));
    assert!(matches!(w.metric("disk"), Verdict::Clear(_)));
}

// --- rpo_breached ----------------------------------------------------------

#[test]
fn rpo_fires_when_the_newest_archive_is_older_than_the_target() {
    let mut w = World::new();
    let p = pair("web", 3600, 30 * 86_400);
    w.archives.insert(p.id, ago(90_000));
    let key = format!("rpo_breached:{}", p.id);
    w.pairs.push(p.clone());
    let d = firing(w.verdict(&key));
    assert_eq!(d.kind, AlertKind::RpoBreached);
    assert_eq!(d.subject_type, "pair");
    assert_eq!(d.subject_id, p.id.to_string());
    assert_eq!(d.subject_name, "web");
    assert_eq!(d.message, "The newest verified archive of web is 25 h old (target 60 min).");
}

#[test]
fn rpo_clears_with_a_fresh_archive() {
    let mut w = World::new();
    let p = pair("web", 3600, 30 * 86_400);
    w.archives.insert(p.id, ago(600));
    w.pairs.push(p.clone());
    assert_eq!(cleared(w.verdict(&format!("rpo_breached:{}", p.id))), "a verified archive of web is 10 min old");
}

#[test]
fn rpo_holds_for_a_young_pair_without_an_archive() {
    let mut w = World::new();
    let p = pair("web", 3600, 600);
    w.pairs.push(p.clone());
    assert_eq!(w.verdict(&format!("rpo_breached:{}", p.id)), Verdict::Hold);
}

#[test]
fn rpo_fires_for_an_old_pair_without_an_archive() {
    let mut w = World::new();
    let p = pair("web", 3600, 3 * 86_400);
    w.pairs.push(p.clone());
    let d = firing(w.verdict(&format!("rpo_breached:{}", p.id)));
    assert_eq!(d.subject_type, "pair");
    assert_eq!(d.message, "web has no verified archive, 3 days after it was created (target 60 min).");
}

#[test]
fn a_disabled_pair_has_no_rpo_verdict() {
    let mut w = World::new();
    let mut p = pair("web", 3600, 3 * 86_400);
    p.enabled = false;
    w.pairs.push(p.clone());
    assert!(!w.verdicts().contains_key(&format!("rpo_breached:{}", p.id)));
}

#[test]
fn rpo_judges_each_pair_by_its_own_archive() {
    let mut w = World::new();
    let stale = pair("stale", 3600, 30 * 86_400);
    let fresh = pair("fresh", 3600, 30 * 86_400);
    w.archives.insert(stale.id, ago(7200));
    w.archives.insert(fresh.id, ago(60));
    w.pairs.extend([stale.clone(), fresh.clone()]);
    assert!(matches!(w.verdict(&format!("rpo_breached:{}", stale.id)), Verdict::Firing(_)));
    assert!(matches!(w.verdict(&format!("rpo_breached:{}", fresh.id)), Verdict::Clear(_)));
}

// --- task_failed -----------------------------------------------------------

#[test]
fn task_failed_fires_for_a_failed_newest_outcome() {
    let mut w = World::new();
    let p = pair("web", 86_400, 86_400);
    let t = ended_task(p.id, TaskKind::Backup, TaskStatus::Failed, Some("vzdump exited with 255"));
    w.pairs.push(p.clone());
    w.outcomes.push(t.clone());
    let d = firing(w.verdict(&format!("task_failed:{}:backup", p.id)));
    assert_eq!(d.kind, AlertKind::TaskFailed);
    assert_eq!(d.subject_type, "task");
    assert_eq!(d.subject_id, t.id.to_string());
    assert_eq!(d.subject_name, "backup of web");
    assert!(d.message.contains("vzdump exited with 255"), "{}", d.message);
    assert_eq!(d.message, "The backup of web failed: vzdump exited with 255");
}

#[test]
fn task_failed_without_an_error_says_so() {
    let mut w = World::new();
    let p = pair("web", 86_400, 86_400);
    w.outcomes.push(ended_task(p.id, TaskKind::Restore, TaskStatus::Failed, None));
    w.pairs.push(p.clone());
    let d = firing(w.verdict(&format!("task_failed:{}:restore", p.id)));
    assert_eq!(d.message, "The restore of web failed: no reason recorded");
}

#[test]
fn task_failed_clears_when_the_newest_outcome_succeeded() {
    let mut w = World::new();
    let p = pair("web", 86_400, 86_400);
    w.outcomes.push(ended_task(p.id, TaskKind::Backup, TaskStatus::Succeeded, None));
    w.pairs.push(p.clone());
    assert_eq!(cleared(w.verdict(&format!("task_failed:{}:backup", p.id))), "a later backup of web succeeded");
}

#[test]
fn task_failed_keys_apart_each_kind_of_a_pair() {
    let mut w = World::new();
    let p = pair("web", 86_400, 86_400);
    w.outcomes.push(ended_task(p.id, TaskKind::Backup, TaskStatus::Succeeded, None));
    w.outcomes.push(ended_task(p.id, TaskKind::Replicate, TaskStatus::Failed, Some("rsync: connection reset")));
    w.pairs.push(p.clone());
    assert!(matches!(w.verdict(&format!("task_failed:{}:backup", p.id)), Verdict::Clear(_)));
    assert!(matches!(w.verdict(&format!("task_failed:{}:replicate", p.id)), Verdict::Firing(_)));
}

#[test]
fn a_task_of_an_unknown_pair_has_no_verdict() {
    let mut w = World::new();
    let gone = PairId::new();
    w.outcomes.push(ended_task(gone, TaskKind::Backup, TaskStatus::Failed, Some("boom")));
    w.pairs.push(pair("web", 86_400, 86_400));
    assert!(w.verdicts().keys().all(|k| !k.starts_with("task_failed:")), "{:?}", w.verdicts().keys());
}

// --- the whole picture -----------------------------------------------------

#[test]
fn a_healthy_host_produces_only_clear_host_verdicts() {
    let w = World::new();
    let verdicts = w.verdicts();
    // host_down, one per watched service, four metrics; nothing else.
    assert_eq!(verdicts.len(), 1 + WATCHED_SERVICES.len() + 4, "{:?}", verdicts.keys());
    for (key, v) in &verdicts {
        assert!(key.contains(&w.host.id.to_string()), "{key}");
        assert!(matches!(v, Verdict::Clear(_)), "{key}: {v:?}");
    }
}

#[test]
fn a_down_host_holds_its_service_and_metric_verdicts() {
    let mut w = World::new();
    w.set_health(silent_for_secs(300));
    w.probes([silent(), silent(), silent()]);
    for (key, v) in w.verdicts() {
        if key.starts_with("host_down:") {
            assert!(matches!(v, Verdict::Firing(_)), "{key}: {v:?}");
        } else {
            assert_eq!(v, Verdict::Hold, "{key}");
        }
    }
}

#[test]
fn each_host_is_judged_on_its_own() {
    let settings = settings();
    let up = hypervisor("dc1");
    let down = hypervisor("drc1");
    let up_health = Health { hypervisor_id: up.id, ..answering() };
    let down_health = Health { hypervisor_id: down.id, ..silent_for_secs(600) };
    let up_samples = newest_first([healthy(), healthy(), healthy()]);
    let down_samples = newest_first([silent(), silent(), silent()]);
    let verdicts = evaluate(&Inputs {
        now: NOW,
        settings: &settings,
        tolerance: TOLERANCE,
        hosts: vec![
            HostView { host: &up, health: Some(&up_health), recent: &up_samples },
            HostView { host: &down, health: Some(&down_health), recent: &down_samples },
        ],
        pairs: &[],
        newest_archive: &HashMap::new(),
        outcomes: &[],
    });
    assert!(matches!(verdicts[&format!("host_down:{}", up.id)], Verdict::Clear(_)));
    let d = firing(verdicts[&format!("host_down:{}", down.id)].clone());
    assert_eq!(d.subject_name, "drc1");
    assert_eq!(d.message, "drc1 has not answered for 600 s.");
}

// --- human -----------------------------------------------------------------

#[test]
fn human_durations() {
    assert_eq!(human(30), "30 s");
    assert_eq!(human(125), "2 min");
    assert_eq!(human(90_000), "25 h");
    assert_eq!(human(3 * 86_400), "3 days");
}

#[test]
fn human_switches_units_at_two_of_the_next() {
    assert_eq!(human(0), "0 s");
    assert_eq!(human(119), "119 s");
    assert_eq!(human(120), "2 min");
    assert_eq!(human(7199), "119 min");
    assert_eq!(human(7200), "2 h");
    assert_eq!(human(172_799), "47 h");
    assert_eq!(human(172_800), "2 days");
}
