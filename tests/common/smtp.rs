//! A real SMTP server for the email tests: `tests/support/smtp_server.py`
//! (aiosmtpd) as a child process on a loopback port, killed on drop, and the
//! messages it accepted, MIME-parsed by Python's `email` package.
//!
//! aiosmtpd is installed with pip when it is missing, so a plain `cargo test`
//! works on a fresh machine that has python3.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;

/// How the server behaves.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// Offer STARTTLS and require it before MAIL.
    pub starttls: bool,
    /// TLS from the first byte (SMTPS).
    pub implicit_tls: bool,
    /// Require AUTH with this user and password.
    pub auth: Option<(String, String)>,
    /// Answer the first N DATA commands with this code.
    pub fail_data: Option<(u32, u16)>,
    /// Answer RCPT TO this address with this code.
    pub reject_rcpt: Option<(String, u16)>,
}

/// One accepted message.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The message as it came over the wire.
    pub data: String,
    /// The session was encrypted (STARTTLS or implicit TLS).
    pub tls: bool,
    pub auth_user: Option<String>,
    /// The client's address and port: the same for messages sent over one
    /// connection.
    pub peer: String,
    /// The top-level MIME type.
    pub content_type: String,
    /// Every header, decoded, in order.
    pub headers: Vec<(String, String)>,
    /// The leaf parts in order, decoded.
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    pub content_type: String,
    pub content: String,
}

impl Mail {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The server process; killed when dropped.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

impl SmtpServer {
    /// Start the server with its files (and TLS material) in `dir`.
    pub fn start(dir: &Path, options: SmtpOptions, tls: Option<&TestCa>) -> SmtpServer {
        ensure_aiosmtpd();
        let name = format!("smtp-{}", uuid::Uuid::now_v7());
        let out = dir.join(format!("{name}.jsonl"));
        // Its log (handshakes the tests make fail on purpose, aiosmtpd's
        // warnings) goes to a file, shown if it does not start.
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new("python3");
        cmd.arg(script()).arg("--out").arg(&out);
        if let Some(ca) = tls {
            cmd.arg("--tls-cert").arg(&ca.cert_path);
            cmd.arg("--tls-key").arg(&ca.key_path);
        }
        if options.starttls {
            cmd.arg("--starttls");
        }
        if options.implicit_tls {
            cmd.arg("--implicit-tls");
        }
        if let Some((user, password)) = &options.auth {
            cmd.arg("--auth").arg(format!("{user}:{password}"));
        }
        if let Some((n, code)) = options.fail_data {
            cmd.arg("--fail-data").arg(format!("{n}:{code}"));
        }
        if let Some((addr, code)) = &options.reject_rcpt {
            cmd.arg("--reject-rcpt").arg(format!("{addr}:{code}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create the SMTP server log"))
            .spawn()
            .expect("start tests/support/smtp_server.py with python3");
        let stdout = child.stdout.take().expect("piped stdout");
        // Read "ready PORT" on a thread, so a hung server fails the test
        // instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("the SMTP test server did not say ready within 20 s\n{log}");
            }
        };
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let status = child.wait();
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("the SMTP test server did not start: {line:?} (exit: {status:?})\n{log}")
            });
        SmtpServer { child, port, out }
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<Mail> {
        let Ok(text) = std::fs::read_to_string(&self.out) else {
            return Vec::new();
        };
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).expect("a JSON line from the SMTP server"))
            .collect()
    }

    /// Wait (up to 10 s) until `n` messages arrived, and return them.
    pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
        let what = format!("{n} message(s) at the SMTP server");
        super::eventually(Duration::from_secs(10), &what, || async {
            self.messages().len() >= n
        })
        .await;
        self.messages()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py")
}

/// Make sure python3 can import aiosmtpd, installing it with pip if not.
fn ensure_aiosmtpd() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let importable = || {
            Command::new("python3")
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if importable() {
            return;
        }
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
            .status();
        assert!(
            importable(),
            "the email tests need a real SMTP server: python3 with the aiosmtpd package. \
             `python3 -m pip install aiosmtpd` failed ({installed:?}); install it and run the tests again"
        );
    });
}

/// A test CA and a server certificate it signed, for 127.0.0.1 and
/// localhost, written as PEM files.
pub struct TestCa {
    /// The CA certificate: the target's `ca_file`.
    pub ca_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestCa {
    pub fn generate(dir: &Path) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hookgate test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        TestCa {
            ca_path: write("ca.pem", ca.pem()),
            cert_path: write("server.pem", cert.pem()),
            key_path: write("server.key", key.serialize_pem()),
        }
    }
}
