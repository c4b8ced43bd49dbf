//! The simulated Proxmox lab (lab/lab.py) as a child process: real sshd per
//! host, shim commands, a Proxmox API. It stops when we close its stdin (or
//! on SIGTERM, which `Drop` sends). Meanwhile it takes control lines on stdin
//! (`power-off NAME`, `power-on NAME`, `drop-ssh NAME`, `shape NAME SPEC`)
//! and answers each with one line on stdout (`OK …` / `ERR …`).
//!
//! A host started with a shape (`Lab::start_with`) sits behind a shaped link
//! in its own network namespace: its JSON line's `address` is the host side
//! of that link (10.213.x.y, reachable from the tests' namespace only through
//! the link), and it has `netns`, `veth` (the root-side interface) and `link`
//! (`{rate_bits_per_sec, delay_ms, loss_pct}`). See lab/README.md.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use serde_json::{json, Value};

pub struct Lab {
    child: Child,
    /// The lab's stdin (closing it stops the lab) and its stdout after READY,
    /// where the answers to control lines come; one exchange at a time.
    control: Mutex<(ChildStdin, Lines<BufReader<ChildStdout>>)>,
    pub hosts: HashMap<String, Value>,
    pub dir: tempfile::TempDir,
}

fn lab_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/lab.py")
}

pub fn lab_cmd(args: &[&str]) -> String {
    let out = Command::new("/usr/bin/python3").arg(lab_py()).args(args).output().expect("run lab.py");
    assert!(out.status.success(), "lab.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Lab {
    /// Hosts on loopback (`NAME` or `NAME:127.x.y.z`), no shaped links.
    pub fn start(names: &[&str], pubkey: &Path) -> Lab {
        Lab::start_with(names, &[], pubkey)
    }

    /// Like `start`, and every `(NAME, SPEC)` in `shapes` puts host NAME (one
    /// of `names`, given without an address) behind a shaped link, e.g.
    /// `Lab::start_with(&["dc1", "drc1"], &[("dc1", "rate=42mbit,delay=10ms")], pubkey)`.
    /// SPEC is `rate=R[,delay=D][,loss=L]`: R in bit/kbit/mbit/gbit (counted
    /// as tc counts, whole Ethernet frames: ssh payload gets ~95 % of it), D
    /// in us/ms/s (one way, each direction), L in % per frame and direction.
    pub fn start_with(names: &[&str], shapes: &[(&str, &str)], pubkey: &Path) -> Lab {
        let dir = tempfile::Builder::new().prefix("drswitch-lab").tempdir_in("/tmp").unwrap();
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(lab_py()).args(["run", "--dir"]).arg(dir.path()).arg("--authorized-key").arg(pubkey);
        for n in names {
            cmd.args(["--host", n]);
        }
        for (name, spec) in shapes {
            cmd.arg("--shape").arg(format!("{name}:{spec}"));
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut hosts = HashMap::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("lab ended before READY").unwrap();
            if line == "READY" {
                break;
            }
            let v: Value = serde_json::from_str(&line).unwrap();
            hosts.insert(v["name"].as_str().unwrap().to_string(), v);
        }
        Lab { child, control: Mutex::new((stdin, lines)), hosts, dir }
    }

    /// Send one control line; return the answer line (`OK …` or `ERR …`).
    fn control(&self, line: &str) -> String {
        let mut guard = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let (stdin, lines) = &mut *guard;
        writeln!(stdin, "{line}").and_then(|_| stdin.flush()).expect("write to the lab's stdin");
        match lines.next() {
            Some(Ok(answer)) => answer,
            Some(Err(e)) => panic!("lab: reading the answer to {line:?}: {e}"),
            None => panic!("lab ended instead of answering {line:?}"),
        }
    }

    fn power(&self, verb: &str, name: &str) {
        let answer = self.control(&format!("{verb} {name}"));
        if answer != format!("OK {verb} {name}") {
            panic!("lab {verb} {name}: {answer}");
        }
    }

    /// The host loses power: every process of it dies at once (its sshd with
    /// every session and job, its API server), both ports refuse connections,
    /// and its VMs stop running (configs and disks stay). Returns once all of
    /// that is so; panics with the lab's `ERR` text (unknown host, already off).
    pub fn power_off(&self, name: &str) {
        self.power("power-off", name);
    }

    /// The host boots again on the same address and ports with the same host
    /// key, certificate and API token; VMs with `onboot: 1` run again (started
    /// before the ports answer). Panics with the lab's `ERR` text (unknown
    /// host, already on, a port still taken by something else).
    pub fn power_on(&self, name: &str) {
        self.power("power-on", name);
    }

    /// Break every open ssh connection to the host at once, as a network
    /// reset would (the client sees the connection reset/closed, exit 255);
    /// the host stays up and accepts new connections at once. Commands the
    /// sessions ran lose their session (a vzdump/qmrestore notices and cleans
    /// up as on a signal). Returns the number of connections dropped; panics
    /// with the lab's `ERR` text (unknown host, host off). Works for shaped
    /// and loopback hosts.
    pub fn drop_ssh(&self, name: &str) -> usize {
        let answer = self.control(&format!("drop-ssh {name}"));
        let prefix = format!("OK drop-ssh {name} ");
        match answer.strip_prefix(&prefix).and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => panic!("lab drop-ssh {name}: {answer}"),
        }
    }

    /// Change a shaped host's link at run time; `spec` as for `start_with`
    /// (the whole link: a missing delay or loss means none). Panics with the
    /// lab's `ERR` text (unknown or unshaped host, bad spec).
    pub fn shape(&self, name: &str, spec: &str) {
        let answer = self.control(&format!("shape {name} {spec}"));
        if !answer.starts_with(&format!("OK shape {name} ")) {
            panic!("lab shape {name} {spec}: {answer}");
        }
    }

    /// Bytes that really crossed the host's shaped link so far, as
    /// `(into_host, out_of_host)`: the root-side veth's `tx_bytes` (sent
    /// towards the host) and `rx_bytes` (received from it), whole Ethernet
    /// frames including TCP/IP/ssh overhead (ssh payload is ~95 % of it).
    /// Take the difference of two readings. Panics for an unshaped host.
    pub fn link_bytes(&self, name: &str) -> (u64, u64) {
        let veth = self.host(name)["veth"].as_str().unwrap_or_else(|| panic!("lab host {name} is not shaped"));
        let read = |counter: &str| -> u64 {
            let path = format!("/sys/class/net/{veth}/statistics/{counter}");
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).trim().parse().unwrap()
        };
        (read("tx_bytes"), read("rx_bytes"))
    }

    pub fn host(&self, name: &str) -> &Value {
        &self.hosts[name]
    }

    pub fn root(&self, name: &str) -> String {
        self.host(name)["root"].as_str().unwrap().to_string()
    }

    pub fn create_vm(&self, host: &str, vmid: u32, disk_size: &str) {
        lab_cmd(&[
            "create-vm",
            "--root",
            &self.root(host),
            "--node",
            host,
            "--vmid",
            &vmid.to_string(),
            "--disk-size",
            disk_size,
            "--name",
            &format!("vm{vmid}"),
            "--running",
        ]);
    }

    pub fn disk_path(&self, host: &str, vmid: u32) -> String {
        lab_cmd(&["disk-path", "--root", &self.root(host), "--node", host, "--vmid", &vmid.to_string()])
    }

    pub fn disk_sha(&self, host: &str, vmid: u32) -> String {
        sha256_of(Path::new(&self.disk_path(host, vmid)))
    }

    pub fn vm_status(&self, host: &str, vmid: u32) -> String {
        lab_cmd(&["vm-status", "--root", &self.root(host), "--node", host, "--vmid", &vmid.to_string()])
    }

    /// The VM's config file as Proxmox keeps it (`key: value` lines).
    pub fn vm_config(&self, host: &str, vmid: u32) -> String {
        let node = self.host(host)["node"].as_str().unwrap().to_string();
        let path = format!("{}/etc/pve/nodes/{node}/qemu-server/{vmid}.conf", self.root(host));
        std::fs::read_to_string(&path).unwrap_or_default()
    }

    pub fn hook(&self, host: &str, name: &str, value: &str) {
        lab_cmd(&["hook", "--root", &self.root(host), name, value]);
    }

    pub fn dump_dir_files(&self, host: &str) -> Vec<String> {
        let dir = self.host(host)["dump_dir_real"].as_str().unwrap().to_string();
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
        v.sort();
        v
    }

    /// The JSON body that registers this lab host in drswitch. `host` is the
    /// JSON line's `address`: for a shaped host the host side of its link, so
    /// drswitch's ssh and API traffic goes through the shaped link.
    pub fn hypervisor_body(&self, name: &str, role: &str) -> Value {
        let h = self.host(name);
        json!({
            "name": name, "host": h["address"], "ssh_port": h["ssh_port"], "node": h["node"], "role": role,
            "api_port": h["api_port"], "api_token_id": h["api_token_id"], "api_token_secret": h["api_token_secret"],
            "tls_fingerprint": h["tls_fingerprint"], "dump_dir": h["dump_dir"],
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

pub fn sha256_of(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}
