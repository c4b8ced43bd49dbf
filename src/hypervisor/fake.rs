//! An in-memory hypervisor for unit tests of the job logic: guests are byte
//! vectors, files live in a map, and hooks make the next dump or restore
//! fail or cancel the task midway, so rollback and cleanup rules are tested
//! in milliseconds beside the lab tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{DumpOptions, Dumped, GuestState, HvError, HvEvent, Hypervisor};
use crate::domain::{DirPath, ErrorKind, Guest, StorageId, Vmid};

#[derive(Debug, Clone, Default)]
pub struct FakeGuest {
    pub disk: Vec<u8>,
    pub running: bool,
    pub tags: Vec<String>,
    pub options: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct FakeHost {
    pub guests: BTreeMap<i64, FakeGuest>,
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: BTreeSet<String>,
    /// Every operation that changes something, in order.
    pub calls: Vec<String>,
    /// The next restore wipes the guest, then fails with this text.
    pub fail_next_restore: Option<String>,
    /// Cancelled while the next restore runs (a user's cancel arriving).
    pub cancel_during_restore: Option<CancellationToken>,
    /// The next dump writes its files, then is cancelled.
    pub cancel_next_dump: bool,
    dumps: u32,
}

pub struct FakeHv {
    pub name: String,
    pub host: Mutex<FakeHost>,
}

impl FakeHv {
    pub fn new(name: &str) -> Self {
        Self { name: name.into(), host: Mutex::new(FakeHost::default()) }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut FakeHost) -> T) -> T {
        f(&mut self.host.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Paths of files and directories left on the host.
    pub fn leftovers(&self) -> Vec<String> {
        self.with(|h| h.files.keys().chain(h.dirs.iter()).cloned().collect())
    }
}

fn failed(msg: impl Into<String>) -> HvError {
    HvError::new(ErrorKind::CommandFailed, msg)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Hypervisor for FakeHv {
    fn name(&self) -> &str {
        &self.name
    }

    async fn guest_state(&self, _: Guest, vmid: Vmid, _: &CancellationToken) -> Result<GuestState, HvError> {
        Ok(self.with(|h| match h.guests.get(&i64::from(vmid)) {
            None => GuestState::Missing,
            Some(g) if g.running => GuestState::Running("running".into()),
            Some(_) => GuestState::Stopped,
        }))
    }

    async fn free_bytes(&self, _: &DirPath, _: &CancellationToken) -> Result<u64, HvError> {
        Ok(1 << 40)
    }

    async fn dump(
        &self,
        vmid: Vmid,
        opts: &DumpOptions,
        cancel: &CancellationToken,
        on: &mut (dyn FnMut(HvEvent<'_>) + Send),
    ) -> Result<Dumped, HvError> {
        let (path, name, cancelled) = self.with(|h| {
            let disk = h.guests.get(&i64::from(vmid)).map(|g| g.disk.clone()).ok_or_else(|| failed("no such VM"))?;
            h.dumps += 1;
            let name = format!("vzdump-qemu-{vmid}-2026_01_01-00_00_{:02}.vma", h.dumps % 60);
            let path = format!("{}/{name}", opts.dump_dir);
            h.files.insert(path.clone(), disk);
            h.files.insert(format!("{}/{}.log", opts.dump_dir, name.trim_end_matches(".vma")), b"log".to_vec());
            h.calls.push(format!("dump {vmid}"));
            Ok::<_, HvError>((path, name, std::mem::take(&mut h.cancel_next_dump)))
        })?;
        on(HvEvent::Line("INFO: creating vzdump archive"));
        on(HvEvent::Progress { percent: 50, done: 0, total: 0 });
        if cancelled || cancel.is_cancelled() {
            return Err(HvError::Cancelled);
        }
        on(HvEvent::Progress { percent: 100, done: 0, total: 0 });
        Ok(Dumped { path, name: name.parse().map_err(|_| failed("bad archive name"))? })
    }

    async fn wait_for_dumps(&self, _: &CancellationToken) -> Result<(), HvError> {
        Ok(())
    }

    async fn restore(
        &self,
        _: Guest,
        archive: &str,
        vmid: Vmid,
        _: &StorageId,
        force: bool,
        _unique: bool,
        cancel: &CancellationToken,
        on: &mut (dyn FnMut(HvEvent<'_>) + Send),
    ) -> Result<(), HvError> {
        let v = i64::from(vmid);
        let (data, fail, user_cancel) = self.with(|h| {
            h.calls.push(format!("restore {v} force={force}"));
            let data = h.files.get(archive).cloned().ok_or_else(|| failed(format!("can't find file '{archive}'")))?;
            match h.guests.get(&v) {
                Some(_) if !force => return Err(failed(format!("VM {v} already exists"))),
                Some(g) if g.running => return Err(failed(format!("unable to restore VM {v} - vm is running"))),
                _ => {}
            }
            // Like qmrestore: the old disks and config are gone from here on.
            h.guests.insert(v, FakeGuest::default());
            Ok((data, h.fail_next_restore.take(), h.cancel_during_restore.take()))
        })?;
        on(HvEvent::Progress { percent: 50, done: 0, total: 0 });
        if let Some(token) = user_cancel {
            token.cancel();
        }
        // A restore cut here would leave the disk half-written.
        if cancel.is_cancelled() {
            self.with(|h| {
                h.guests.insert(v, FakeGuest { disk: data[..data.len() / 2].to_vec(), ..Default::default() })
            });
            return Err(HvError::Cancelled);
        }
        if let Some(msg) = fail {
            return Err(failed(msg));
        }
        self.with(|h| h.guests.insert(v, FakeGuest { disk: data, ..Default::default() }));
        on(HvEvent::Progress { percent: 100, done: 0, total: 0 });
        Ok(())
    }

    async fn stop(&self, _: Guest, vmid: Vmid, _: &CancellationToken) -> Result<(), HvError> {
        self.with(|h| {
            h.calls.push(format!("stop {vmid}"));
            h.guests.get_mut(&i64::from(vmid)).map(|g| g.running = false).ok_or_else(|| failed("no such VM"))
        })
    }

    async fn start(&self, _: Guest, vmid: Vmid, _: &CancellationToken) -> Result<(), HvError> {
        self.with(|h| {
            h.calls.push(format!("start {vmid}"));
            h.guests.get_mut(&i64::from(vmid)).map(|g| g.running = true).ok_or_else(|| failed("no such VM"))
        })
    }

    async fn shutdown(
        &self,
        g: Guest,
        vmid: Vmid,
        _: std::time::Duration,
        c: &CancellationToken,
    ) -> Result<(), HvError> {
        self.stop(g, vmid, c).await
    }

    async fn options(&self, _: Guest, vmid: Vmid, _: &CancellationToken) -> Result<Vec<(String, String)>, HvError> {
        self.with(|h| {
            h.guests
                .get(&i64::from(vmid))
                .map(|g| g.options.clone().into_iter().collect())
                .ok_or_else(|| failed("no such VM"))
        })
    }

    async fn set_options(
        &self,
        _: Guest,
        vmid: Vmid,
        options: &[(String, String)],
        _: &CancellationToken,
    ) -> Result<(), HvError> {
        self.with(|h| {
            h.calls.push(format!(
                "set {vmid} {}",
                options.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
            ));
            let g = h.guests.get_mut(&i64::from(vmid)).ok_or_else(|| failed("no such VM"))?;
            g.options.extend(options.iter().cloned());
            Ok(())
        })
    }

    async fn destroy(&self, _: Guest, vmid: Vmid, _: &CancellationToken) -> Result<(), HvError> {
        self.with(|h| {
            h.calls.push(format!("destroy {vmid}"));
            h.guests.remove(&i64::from(vmid)).map(|_| ()).ok_or_else(|| failed("no such VM"))
        })
    }

    async fn agent_ping(&self, vmid: Vmid, _: &CancellationToken) -> Result<bool, HvError> {
        self.with(|h| Ok(h.guests.get(&i64::from(vmid)).is_some_and(|g| g.running)))
    }

    async fn tags(&self, _: Guest, vmid: Vmid, _: &CancellationToken) -> Result<Vec<String>, HvError> {
        self.with(|h| h.guests.get(&i64::from(vmid)).map(|g| g.tags.clone()).ok_or_else(|| failed("no such VM")))
    }

    async fn set_tags(&self, _: Guest, vmid: Vmid, tags: &[String], _: &CancellationToken) -> Result<(), HvError> {
        self.with(|h| {
            h.calls.push(format!("tag {vmid}"));
            h.guests.get_mut(&i64::from(vmid)).map(|g| g.tags = tags.to_vec()).ok_or_else(|| failed("no such VM"))
        })
    }

    async fn sha256(&self, path: &str, _: &CancellationToken) -> Result<String, HvError> {
        self.with(|h| h.files.get(path).map(|d| sha(d)).ok_or_else(|| failed(format!("no file {path}"))))
    }

    async fn file_size(&self, path: &str, _: &CancellationToken) -> Result<u64, HvError> {
        self.with(|h| h.files.get(path).map(|d| d.len() as u64).ok_or_else(|| failed(format!("no file {path}"))))
    }

    async fn make_dir(&self, path: &str, _: &CancellationToken) -> Result<(), HvError> {
        self.with(|h| h.dirs.insert(path.to_string()));
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str, _: &CancellationToken) -> Result<(), HvError> {
        self.with(|h| {
            let data = h.files.remove(from).ok_or_else(|| failed(format!("no file {from}")))?;
            h.files.insert(to.to_string(), data);
            Ok(())
        })
    }

    async fn remove(&self, paths: &[&str], _: &CancellationToken) -> Result<(), HvError> {
        self.with(|h| {
            for p in paths {
                h.calls.push(format!("remove {p}"));
                let under = format!("{p}/");
                h.files.retain(|f, _| f != p && !f.starts_with(&under));
                h.dirs.retain(|d| d != p && !d.starts_with(&under));
            }
        });
        Ok(())
    }

    async fn pull(
        &self,
        remote: &str,
        local: &Path,
        _: &CancellationToken,
        on: &mut (dyn FnMut(HvEvent<'_>) + Send),
    ) -> Result<(), HvError> {
        let data = self.with(|h| h.files.get(remote).cloned()).ok_or_else(|| failed(format!("no file {remote}")))?;
        std::fs::write(local, &data).map_err(|e| failed(e.to_string()))?;
        on(HvEvent::Progress { percent: 100, done: data.len() as u64, total: 0 });
        Ok(())
    }

    async fn push(
        &self,
        local: &Path,
        remote: &str,
        _: &CancellationToken,
        on: &mut (dyn FnMut(HvEvent<'_>) + Send),
    ) -> Result<(), HvError> {
        let data = std::fs::read(local).map_err(|e| failed(e.to_string()))?;
        on(HvEvent::Progress { percent: 100, done: data.len() as u64, total: 0 });
        self.with(|h| h.files.insert(remote.to_string(), data));
        Ok(())
    }

    fn bwlimit_kib(&self) -> u64 {
        0
    }

    // Streams are ssh sessions; the lab tests them against real sshd.
    async fn dump_stream(
        &self,
        _: Guest,
        _: Vmid,
        _: &crate::hypervisor::StreamOptions,
    ) -> Result<crate::hypervisor::stream::DumpStream, HvError> {
        Err(failed("the fake host does not stream".to_string()))
    }

    async fn upload(&self, _: &str) -> Result<crate::hypervisor::stream::Upload, HvError> {
        Err(failed("the fake host does not stream".to_string()))
    }
}
