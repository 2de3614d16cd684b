//! A PostgreSQL server of a test's own, for what a shared server cannot be put through: being
//! stopped and started again. Built from the binaries `scripts/prepare-test-services` installs
//! (`TEST_PG_BIN`, the wheel's `pginstall/bin`, which has pgvector), in a temporary folder, on
//! a free loopback port, with trust authentication; removed when dropped.
//!
//! PostgreSQL refuses to run as root, so under root every command runs as the `postgres` user
//! (`runuser`), which owns the data folder.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    /// Holds the data folder; removed on drop, after the server is stopped.
    folder: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PostgresServer {
    /// Initialises a cluster and starts it; a few seconds.
    pub fn start() -> anyhow::Result<Self> {
        let bin = PathBuf::from(std::env::var("TEST_PG_BIN").context(
            "TEST_PG_BIN must name PostgreSQL's bin folder (scripts/test sets it from \
             scripts/prepare-test-services)",
        )?);
        let as_postgres = is_root()?;
        let folder = tempfile::Builder::new()
            .prefix("ajutant-pg-")
            .tempdir_in(std::env::temp_dir())?;
        let data = folder.path().join("data");
        std::fs::create_dir(&data)?;
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(folder.path()))?;
        }
        let port = free_port()?;
        let server = Self {
            bin,
            folder,
            port,
            as_postgres,
        };
        server.run_tool(
            "initdb",
            &[
                "--pgdata",
                path_text(&data)?,
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n\
             fsync = off\n"
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(&settings);
        std::fs::write(&conf, text)?;
        server.start_again()?;
        Ok(server)
    }

    /// The URL of its `postgres` database, as a superuser.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops it the way an operator's restart does (`pg_ctl stop -m fast`: open sessions are
    /// ended, new connections refused until it is started again).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["stop", "--mode=fast", "--wait"])
    }

    /// Starts it (again); returns once it accepts connections (`pg_ctl --wait`).
    pub fn start_again(&self) -> anyhow::Result<()> {
        let log = self.folder.path().join("server.log");
        self.pg_ctl(&["start", "--wait", "--timeout=60", "--log", path_text(&log)?])
    }

    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let data = self.folder.path().join("data");
        let mut all = vec!["--pgdata", path_text(&data)?];
        all.extend_from_slice(args);
        self.run_tool("pg_ctl", &all)
    }

    fn run_tool(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command.args(args);
        run(&mut command)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "--mode=immediate", "--wait"]);
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn is_root() -> anyhow::Result<bool> {
    let output = Command::new("id")
        .arg("-u")
        .output()
        .context("cannot run id -u")?;
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn path_text(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
