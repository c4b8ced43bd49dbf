//! Commands drswitch runs against hosts (ssh, rsync) end with drswitch:
//! a worker that is killed must not leave a transfer running behind it,
//! writing into files the next attempt of its task goes on from.
//! `setpriv --pdeathsig` (util-linux, on every Debian) asks the kernel to
//! kill the child when its parent dies, without unsafe code here.

use tokio::process::Command;

/// `program` run so that it is killed when drswitch dies.
pub fn command(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--pdeathsig", "KILL", "--", program]);
    c
}
