//! A real browser for the console's tests: headless Chromium driven over
//! WebDriver (a chromedriver process of our own, spoken to with fantoccini).
//!
//! Where Chromium or chromedriver is not installed, [`Browser::start`]
//! answers `None` after one line on stderr that says so, and the test returns
//! (it passes as skipped). `HOOKGATE_CHROMIUM` and `HOOKGATE_CHROMEDRIVER`
//! name other binaries (an empty or missing path means "not installed").
//! Screenshots go to `target/console-screenshots/` for a person to look at.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The one line printed when the browser tests cannot run.
pub const SKIP_LINE: &str = "SKIPPED console browser tests: chromium/chromedriver not installed \
     (apt-get install chromium chromium-driver)";

/// How long a wait for the page lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// One browser at a time: Chromium is heavy, and the suite runs its tests
/// in parallel on small machines.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A headless Chromium session and the chromedriver serving it.
pub struct Browser {
    pub client: Client,
    _turn: tokio::sync::MutexGuard<'static, ()>,
    driver: Child,
    driver_port: u16,
    session: Option<String>,
    shots: PathBuf,
    width: u32,
    height: u32,
}

/// `name` on the PATH, or `fallback` if that exists; `env` overrides both.
fn find(env: &str, name: &str, fallback: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .chain(std::iter::once(PathBuf::from(fallback)))
        .find(|p| p.is_file())
}

/// Where screenshots go: `<target dir>/console-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            // The test binary is `<target>/<profile>/deps/it-<hash>`.
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshots")
}

impl Browser {
    /// Start chromedriver and a headless Chromium with a `width` x `height`
    /// window, or say once that they are not installed and answer `None`.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let driver_bin = find(
            "HOOKGATE_CHROMEDRIVER",
            "chromedriver",
            "/usr/bin/chromedriver",
        );
        let chromium = find("HOOKGATE_CHROMIUM", "chromium", "/usr/bin/chromium");
        let (Some(driver_bin), Some(chromium)) = (driver_bin, chromium) else {
            static SAID: Once = Once::new();
            // Straight to stderr: libtest captures print!/eprint!, and this
            // line must be seen even when the test passes.
            SAID.call_once(|| {
                let _ = writeln!(std::io::stderr(), "{SKIP_LINE}");
            });
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().await;
        let port = super::free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver_bin.display()));
        let mut browser = Browser {
            client: connect(port, &chromium, width, height).await,
            _turn: turn,
            driver,
            driver_port: port,
            session: None,
            shots: screenshot_dir(),
            width,
            height,
        };
        browser.session = browser.client.session_id().await.ok().flatten();
        browser.resize(width, height).await;
        std::fs::create_dir_all(&browser.shots).expect("create the screenshot directory");
        Some(browser)
    }

    /// Make the page's viewport `width` x `height` CSS pixels.
    pub async fn resize(&mut self, width: u32, height: u32) {
        self.width = width;
        self.height = height;
        self.client
            .set_window_size(width, height)
            .await
            .expect("set the window size");
        // The window's outer size may include a frame: correct by what is left over.
        let inner = self
            .js("return [window.innerWidth, window.innerHeight]")
            .await;
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(width.into()),
            inner[1].as_u64().unwrap_or(height.into()),
        );
        if (iw, ih) != (width.into(), height.into()) {
            let w = (2 * width as u64).saturating_sub(iw) as u32;
            let h = (2 * height as u64).saturating_sub(ih) as u32;
            self.client
                .set_window_size(w, h)
                .await
                .expect("set the window size");
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Run `script` (a function body: `return ...`) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn wait_for(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => el,
            Err(e) => panic!("no {css} after {WAIT:?}: {e}\n{}", self.describe().await),
        }
    }

    /// Wait until `expr` (a JavaScript expression) is truthy in the page.
    pub async fn wait_until(&self, what: &str, expr: &str) {
        let start = Instant::now();
        loop {
            let v = self
                .client
                .execute(&format!("return Boolean({expr})"), vec![])
                .await;
            if let Ok(Value::Bool(true)) = v {
                return;
            }
            if start.elapsed() > WAIT {
                panic!(
                    "timed out after {WAIT:?} waiting for: {what}\n({expr})\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's address and visible text, for a failure message.
    async fn describe(&self) -> String {
        let v = self
            .client
            .execute(
                "return location.href + '\\n' + document.body.innerText.slice(0, 3000)",
                vec![],
            )
            .await;
        match v {
            Ok(Value::String(s)) => format!("page now:\n{s}"),
            other => format!("page unreadable: {other:?}"),
        }
    }

    pub async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clear the field `css` and type `text` into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        el.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Choose the option with `value` in the <select> `css`.
    pub async fn choose(&self, css: &str, value: &str) {
        self.wait_for(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    /// The text of the first element matching `css` (waiting for it).
    pub async fn text(&self, css: &str) -> String {
        self.wait_for(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    /// Save the whole page (up to 4000 px tall) as `<name>.png`; answers its path.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        // Let a just-painted view settle (fonts, a refresh in flight).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let tall = self
            .js("return document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap_or(0)
            .min(4000) as u32;
        let (width, height) = (self.width, self.height);
        if tall > height {
            self.resize(width, tall).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let png = self.client.screenshot().await.expect("take a screenshot");
        if tall > height {
            self.resize(width, height).await;
        }
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// End the session (Chromium exits) and chromedriver.
    pub async fn close(mut self) {
        self.session = None;
        let client = self.client.clone();
        let _ = client.close().await;
    }
}

/// Open a session on the chromedriver at `port`, retrying while it starts.
async fn connect(port: u16, chromium: &Path, width: u32, height: u32) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"),
                "--hide-scrollbars",
                "--force-color-profile=srgb",
                "--lang=en-US",
                // Nothing but the page under test may use the network.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!("a JSON object literal")
    };
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        let mut builder = ClientBuilder::rustls().expect("a rustls HTTP connector");
        builder.capabilities(caps.clone());
        match builder.connect(&url).await {
            Ok(client) => return client,
            Err(e) if start.elapsed() > Duration::from_secs(20) => {
                panic!("no WebDriver session from chromedriver on {url}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test never reached close(): end the session by hand (a
        // plain HTTP DELETE, no runtime needed) so Chromium exits with it.
        if let Some(session) = self.session.take()
            && let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.driver_port))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = s.read(&mut [0u8; 512]);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
