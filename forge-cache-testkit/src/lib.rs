//! Dev-only helpers for forge-cache's tests and benchmarks: a real
//! `redis-server` on a free loopback port, or a real Redis Cluster of several
//! of them ([`RedisCluster`]), stopped by PID when dropped.
//!
//! There is no mock: a test that needs Redis and cannot start one panics with
//! a message saying how to install it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod cluster;

pub use cluster::RedisCluster;

/// How long a server may take to answer `PING` after starting.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` child process on 127.0.0.1.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    dir: PathBuf,
}

/// Picks a port that is free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn redis_server_binary() -> String {
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
    if Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!(
            "`{bin}` is not installed, and this test needs a real Redis.\n\
             Install it (Debian/Ubuntu: `apt-get install -y redis-server`; macOS: `brew install redis`),\n\
             or run `bash scripts/test.sh`, which installs it when run as root."
        );
    }
    bin
}

impl RedisServer {
    /// Starts a server with no persistence on a free port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments, e.g.
    /// `["--requirepass", "pw"]`.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::try_start_with(extra).unwrap_or_else(|e| panic!("could not start redis-server: {e}"))
    }

    /// Like [`start_with`](Self::start_with), but returns the reason instead
    /// of panicking when the server does not come up (after a few attempts on
    /// different ports).
    pub fn try_start_with(extra: &[&str]) -> Result<Self, String> {
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("forge-cache-redis-{}-{port}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let mut server = RedisServer {
                child: None,
                port,
                args: extra.iter().map(|s| s.to_string()).collect(),
                dir,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                // Dropping the failed `server` removes its directory.
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let bin = redis_server_binary();
        let mut cmd = Command::new(bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited at start with {status}"));
            }
            if self.answers_ping() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("redis-server did not answer PING in time".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            // `+PONG`, or `-NOAUTH` when a password is required: either way it is up.
            Ok(n) if n > 0 => buf[0] == b'+' || buf[..n].starts_with(b"-NOAUTH"),
            _ => false,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL, by PID) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same arguments.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("could not restart redis-server: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Freezes the server with SIGSTOP: connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused server with SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let status = Command::new("kill").arg(sig).arg(pid.to_string()).status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "kill {sig} {pid} failed"
            );
        }
    }

    /// Runs a command through `redis-cli` against this server and returns
    /// its output (for test setup such as `CONFIG SET`).
    pub fn cli(&self, args: &[&str]) -> String {
        let mut all = vec!["-h", "127.0.0.1", "-p"];
        let port = self.port.to_string();
        all.push(&port);
        all.extend_from_slice(args);
        redis_cli(&all)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused server ignores SIGKILL until resumed on some kernels'
        // job-control paths; resume first to be safe.
        if self.child.is_some() {
            self.resume();
        }
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A throwaway CA and a server certificate for `localhost` / `127.0.0.1`
/// (also usable as a client certificate, which the TLS cluster bus of
/// [`RedisCluster::start_tls`] requires), generated with the `openssl` command into a temporary directory that is
/// removed on drop.
pub struct TestCerts {
    dir: PathBuf,
}

impl TestCerts {
    /// Generates the CA (`ca.pem`) and the server key and certificate.
    pub fn generate() -> Self {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("forge-cache-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("the `openssl` command is needed to generate test certificates");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=forge-cache test CA",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat());
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("write ext.cnf");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        TestCerts { dir }
    }

    /// The CA certificate (PEM) clients should trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server certificate (PEM).
    pub fn cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server's private key (PEM).
    pub fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisServer {
    /// Starts a server that also listens with TLS on a second, TLS port (returned)
    /// using `certs` (clients are not asked for certificates). The plain
    /// port stays open for readiness checks and `cli`.
    pub fn start_tls(certs: &TestCerts) -> (Self, u16) {
        let tls_port = free_port();
        let args = certs.server_args(tls_port);
        let server = Self::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
        (server, tls_port)
    }
}

impl TestCerts {
    /// The `redis-server` arguments to listen with TLS on `tls_port` with
    /// these certificates, not asking clients for one.
    pub(crate) fn server_args(&self, tls_port: u16) -> Vec<String> {
        let path = |p: PathBuf| p.to_str().expect("utf-8 path").to_owned();
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            path(self.cert()),
            "--tls-key-file".into(),
            path(self.key()),
            "--tls-ca-cert-file".into(),
            path(self.ca()),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }
}

/// Runs `redis-cli` with `args` and returns its trimmed standard output.
pub(crate) fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect(
            "redis-cli is installed with redis-server (Debian: apt-get install -y redis-tools)",
        );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
