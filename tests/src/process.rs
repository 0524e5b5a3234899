//! A server in a child process, for the tests that need one of their own: resource limits
//! (`prlimit`), signals, the memory of the server alone.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail, ensure};

/// A server process, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `exe` with `args`, under `prlimit` with `limits` (e.g. `--as=1073741824`) when
    /// given, and waits for the stdout line from which `listening` reads the address it
    /// listens on (the lines before it are skipped; those after it are read and discarded,
    /// so the server never writes to a closed pipe).
    pub fn start(
        exe: &str,
        limits: &[&str],
        args: &[&str],
        listening: fn(&str) -> Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let mut command = if limits.is_empty() {
            Command::new(exe)
        } else {
            let mut c = Command::new("prlimit");
            c.args(limits).arg("--").arg(exe);
            c
        };
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {exe} (is prlimit from util-linux installed?)"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                let status = child.wait()?;
                bail!("{exe} exited ({status}) before saying where it listens");
            }
            if let Some(addr) = listening(&line) {
                break addr;
            }
        };
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        Ok(Self { child, addr })
    }

    /// `interop-server` (at `exe`) on a free port, which says `LISTENING <port>`.
    pub fn interop(exe: &str, limits: &[&str], args: &[&str]) -> anyhow::Result<Self> {
        let mut all = vec!["--port", "0", "--no-cors"];
        all.extend_from_slice(args);
        Self::start(exe, limits, &all, |line| {
            let port: u16 = line.trim().strip_prefix("LISTENING ")?.parse().ok()?;
            Some(SocketAddr::from(([127, 0, 0, 1], port)))
        })
    }

    /// `(VmHWM, VmPeak)` of the server process, in KiB.
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("reading the server's /proc status")?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name}"))?;
            Ok(line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?)
        };
        Ok((field("VmHWM:")?, field("VmPeak:")?))
    }

    /// Fails when the process has exited.
    pub fn alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the server died: {status}");
        }
        Ok(())
    }

    /// Sends the signal `name` (`TERM`, `INT`, ...).
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?;
        ensure!(status.success(), "kill -{name} failed");
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
