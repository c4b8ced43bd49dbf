//! The job rules against the in-memory hypervisor and a throwaway SQLite
//! database: rollback on a failed restore, a cancel deferred while the
//! replica is being replaced, an unmarked VM left alone, cleanup after a
//! cancelled dump. Milliseconds each; the lab tests prove the same end to end.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{backup, restore, JobError};
use crate::db::archives::{Archive, NewArchive};
use crate::db::hypervisors::{Hypervisor as HypervisorRecord, HypervisorFields};
use crate::db::pairs::{Pair, PairFields};
use crate::db::tasks::NewTask;
use crate::db::Db;
use crate::domain::{ErrorKind, Guest, HypervisorRole, TaskId, TaskKind};
use crate::hypervisor::fake::{FakeGuest, FakeHv};
use crate::hypervisor::replica_tag;
use crate::settings::Settings;
use crate::state::AppState;
use crate::worker::context::{Phases, TaskCtx};

struct World {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
    pair: Pair,
    dc: HypervisorRecord,
    drc: HypervisorRecord,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let settings = Settings::from_lookup(|k| match k {
        "DATA_DIR" => Some(data.display().to_string()),
        "SECRET_KEY" => Some("k".repeat(40)),
        _ => None,
    })
    .unwrap();
    let db = Db::connect(&settings).await.unwrap();
    db.migrate().await.unwrap();
    let secrets = crate::secrets::SecretBox::load(&settings).unwrap();
    let state = Arc::new(AppState::new(db, settings, secrets));
    let host = |name: &str, role| HypervisorFields {
        name: name.into(),
        host: "127.0.0.1".parse().unwrap(),
        ssh_port: 22,
        ssh_user: "root".parse().unwrap(),
        node: name.parse().unwrap(),
        role,
        api_port: 8006,
        api_token_id: None,
        api_token_secret_enc: None,
        tls_fingerprint: None,
        dump_dir: "/var/lib/vz/dump".parse().unwrap(),
        restore_storage: "local-lvm".parse().unwrap(),
        enabled: true,
        bwlimit_kib: None,
    };
    let dc = state.db.insert_hypervisor(&host("dc1", HypervisorRole::Dc)).await.unwrap();
    let drc = state.db.insert_hypervisor(&host("drc1", HypervisorRole::Drc)).await.unwrap();
    let pair = state
        .db
        .insert_pair(&PairFields {
            name: "p".into(),
            src_hypervisor_id: dc,
            src_vmid: 100.try_into().unwrap(),
            dst_hypervisor_id: Some(drc),
            dst_vmid: 200.try_into().unwrap(),
            guest: Guest::Qemu,
            compress: crate::domain::Compress::None,
            mode: crate::domain::Mode::Snapshot,
            start_after_restore: true,
            keep_last: 3,
            keep_daily: None,
            keep_weekly: None,
            keep_monthly: None,
            auto_failover: false,
            enabled: true,
            rpo_target_secs: 90_000,
            drill_vmid: None,
            network_map: Default::default(),
            shutdown_returned_source: false,
            transfer: crate::domain::Transfer::Staged,
            fleecing_storage: None,
        })
        .await
        .unwrap();
    let pair = state.db.pair(pair).await.unwrap().unwrap();
    let dc = state.db.hypervisor(dc).await.unwrap().unwrap();
    let drc = state.db.hypervisor(drc).await.unwrap().unwrap();
    World { _dir: dir, state, pair, dc, drc }
}

impl World {
    /// A running task of `kind` and its context; the writer flushes the log.
    async fn task(&self, kind: TaskKind) -> (TaskCtx, tokio::task::JoinHandle<()>) {
        let t = self
            .state
            .db
            .insert_task(&NewTask {
                kind,
                pair_id: self.pair.id,
                archive_id: None,
                schedule_id: None,
                requested_by: "test",
                max_attempts: 3,
                src_hypervisor_id: Some(self.dc.id),
                dst_hypervisor_id: Some(self.drc.id),
                force: false,
            })
            .await
            .unwrap();
        TaskCtx::new(self.state.clone(), t, CancellationToken::new())
    }

    /// An archive of the pair, stored on the middleware with `content`.
    async fn archive(&self, second: u32, content: &[u8]) -> Archive {
        let name = format!("vzdump-qemu-100-2026_01_01-00_00_{second:02}.vma").parse().unwrap();
        let store = self.state.archives();
        store.prepare(self.pair.id).unwrap();
        std::fs::write(store.path(self.pair.id, &name), content).unwrap();
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content));
        self.state
            .db
            .insert_archive(&NewArchive {
                pair_id: self.pair.id,
                file_name: &name,
                size_bytes: content.len() as i64,
                sha256: &sha,
                task_id: TaskId::new(),
            })
            .await
            .unwrap()
    }

    async fn log(&self, ctx: TaskCtx, writer: tokio::task::JoinHandle<()>) -> String {
        let id = ctx.task.id;
        drop(ctx);
        writer.await.unwrap();
        self.state.db.task_log(id).await.unwrap().into_iter().map(|l| l.line).collect::<Vec<_>>().join("\n")
    }

    /// The DRC host with this pair's replica of `content`, running.
    async fn replica(&self, content: &[u8], archive: &Archive) -> FakeHv {
        let drc = FakeHv::new("drc1");
        drc.with(|h| {
            h.guests.insert(
                200,
                FakeGuest {
                    disk: content.to_vec(),
                    running: true,
                    tags: vec![replica_tag(&self.pair)],
                    ..Default::default()
                },
            )
        });
        self.state.db.replica_whole(self.pair.id, Some(archive.id)).await.unwrap();
        drc
    }
}

const PHASES: Phases = Phases::new(0.0, 40.0, 100.0);

#[tokio::test]
async fn a_failed_restore_rolls_back_to_the_last_good_archive() {
    let w = world().await;
    let old = w.archive(1, b"old replica").await;
    let new = w.archive(2, b"new data").await;
    let drc = w.replica(b"old replica", &old).await;
    drc.with(|h| h.fail_next_restore = Some("disk write error".into()));
    let (ctx, writer) = w.task(TaskKind::Restore).await;
    let r =
        restore::run_restore(&ctx, &w.pair, &w.drc, &drc, &new, restore::Source::Store { verify: true }, PHASES, false)
            .await;
    let Err(JobError::Failed { kind, message }) = r else { panic!("{r:?}") };
    assert_eq!(kind, ErrorKind::CommandFailed);
    assert!(message.contains("rolled back to the archive of the last good restore"), "{message}");
    drc.with(|h| {
        let g = &h.guests[&200];
        assert_eq!(g.disk, b"old replica");
        assert!(g.running);
        assert_eq!(g.tags, [replica_tag(&w.pair)]);
    });
    let pair = w.state.db.pair(w.pair.id).await.unwrap().unwrap();
    assert_eq!(pair.replica_archive_id, Some(old.id));
    assert_eq!(pair.replica_task_id, None, "the replica is whole again");
    assert!(drc.with(|h| h.files.is_empty()), "no archive left on the host: {:?}", drc.leftovers());
    w.log(ctx, writer).await;
}

#[tokio::test]
async fn a_cancel_while_the_replica_is_replaced_waits_until_it_is_whole() {
    let w = world().await;
    let old = w.archive(1, b"old replica").await;
    let new = w.archive(2, b"new data").await;
    let drc = w.replica(b"old replica", &old).await;
    let (ctx, writer) = w.task(TaskKind::Restore).await;
    drc.with(|h| h.cancel_during_restore = Some(ctx.cancel.clone()));
    let r =
        restore::run_restore(&ctx, &w.pair, &w.drc, &drc, &new, restore::Source::Store { verify: true }, PHASES, false)
            .await;
    assert!(r.is_ok(), "{r:?}");
    drc.with(|h| {
        assert_eq!(h.guests[&200].disk, b"new data");
        assert!(h.guests[&200].running);
    });
    let log = w.log(ctx, writer).await;
    assert!(log.contains("the cancel came while VM 200 was being replaced"), "{log}");
    let pair = w.state.db.pair(w.pair.id).await.unwrap().unwrap();
    assert_eq!(pair.replica_archive_id, Some(new.id));
}

#[tokio::test]
async fn an_unmarked_vm_is_never_stopped_or_overwritten() {
    let w = world().await;
    let new = w.archive(2, b"new data").await;
    let drc = FakeHv::new("drc1");
    drc.with(|h| {
        h.guests
            .insert(200, FakeGuest { disk: b"production".to_vec(), running: true, tags: vec![], ..Default::default() })
    });
    let (ctx, writer) = w.task(TaskKind::Restore).await;
    let r =
        restore::run_restore(&ctx, &w.pair, &w.drc, &drc, &new, restore::Source::Store { verify: true }, PHASES, false)
            .await;
    let Err(JobError::Failed { kind, message }) = r else { panic!("{r:?}") };
    assert_eq!(kind, ErrorKind::NotOurs);
    assert!(message.contains("VM 200 on drc1 exists but is not a replica"), "{message}");
    drc.with(|h| {
        assert_eq!(h.guests[&200].disk, b"production");
        assert!(h.guests[&200].running);
        assert!(h.calls.iter().all(|c| !c.starts_with("stop") && !c.starts_with("restore")), "{:?}", h.calls);
    });
    let first = ctx.task.id;
    w.log(ctx, writer).await;
    w.state.db.request_cancel(first).await.unwrap();

    // Adopted: replaced and marked.
    assert!(w.state.db.set_adopted(w.pair.id).await.unwrap());
    let (ctx, writer) = w.task(TaskKind::Restore).await;
    restore::run_restore(&ctx, &w.pair, &w.drc, &drc, &new, restore::Source::Store { verify: true }, PHASES, false)
        .await
        .unwrap();
    drc.with(|h| {
        assert_eq!(h.guests[&200].disk, b"new data");
        assert_eq!(h.guests[&200].tags, [replica_tag(&w.pair)]);
    });
    assert!(!w.state.db.pair(w.pair.id).await.unwrap().unwrap().adopted);
    w.log(ctx, writer).await;
}

#[tokio::test]
async fn a_cancelled_dump_leaves_nothing_behind() {
    let w = world().await;
    let dc = FakeHv::new("dc1");
    dc.with(|h| {
        h.guests.insert(100, FakeGuest { disk: b"source".to_vec(), running: true, tags: vec![], ..Default::default() });
        h.cancel_next_dump = true;
    });
    let (ctx, writer) = w.task(TaskKind::Backup).await;
    let r = backup::run_backup(&ctx, &w.pair, &w.dc, &dc, PHASES).await;
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    assert!(dc.leftovers().is_empty(), "the task's directory went with its dump: {:?}", dc.leftovers());
    assert!(w.state.db.remote_files(ctx.task.id).await.unwrap().is_empty());
    assert!(w.state.db.list_archives(w.pair.id).await.unwrap().is_empty());
    let dir = w.state.archives().pair_dir(w.pair.id);
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0, "no partial file on the middleware");
    w.log(ctx, writer).await;

    // The next dump succeeds and its archive is byte-identical.
    let (ctx, writer) = w.task(TaskKind::Backup).await;
    let a = backup::run_backup(&ctx, &w.pair, &w.dc, &dc, PHASES).await.unwrap();
    assert_eq!(std::fs::read(w.state.archives().path(w.pair.id, &a.file_name)).unwrap(), b"source");
    assert!(dc.leftovers().is_empty(), "{:?}", dc.leftovers());
    w.log(ctx, writer).await;
}
