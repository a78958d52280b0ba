//! The phone page in a real browser: Debian's Chromium, headless, driven through
//! chromedriver's WebDriver protocol (plain JSON over HTTP, so no client crate), against a
//! real headless host on loopback. It also takes the phone-sized screenshot for the README
//! when `WHATNEXT_PHONE_SCREENSHOT` names a file.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::companion::host_with_a_party;
use crate::harness::*;
use crate::http_client::{post, request, split_url};

/// chromedriver on a free port, stopped on drop.
struct Driver {
    child: Child,
    addr: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed (apt-get install chromium chromium-driver)");
        let driver = Driver {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(answer) = request("GET", &driver.addr, "/status", None)
                && answer.status == 200
                && answer.json()["value"]["ready"] == json!(true)
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver never got ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = request(method, &self.addr, path, body.as_ref())
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let value = answer.json();
        assert_eq!(answer.status, 200, "WebDriver {method} {path}: {value}");
        value["value"].clone()
    }
}

/// One headless Chromium window, phone-sized.
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = request(
            "DELETE",
            &self.driver.addr,
            &format!("/session/{}", self.session),
            None,
        );
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl<'a> Browser<'a> {
    fn open(driver: &'a Driver) -> Browser<'a> {
        let profile = tempfile::tempdir().expect("tempdir");
        let binary = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists())
            .expect("Debian's chromium");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display())],
                "mobileEmulation": {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 1.0}}
            }
        }}});
        let session = driver.call("POST", "/session", Some(capabilities))["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Browser {
            driver,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT].as_str().expect("an element").to_owned()
    }

    fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.call("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        );
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Runs `script` in the page (`callback` is the last argument) and returns its answer.
    fn run_async(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Waits until the text of `css` satisfies `check`; returns it.
    fn wait_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = self.text(css);
            if check(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}: {css} is {text:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn screenshot_png(&self) -> Vec<u8> {
        let text = self.call("GET", "/screenshot", None);
        base64_decode(text.as_str().expect("base64"))
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for byte in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|b| *b == byte) else {
            continue; // padding and line breaks
        };
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[test]
fn a_phone_browser_sees_the_party_adds_a_track_and_reacts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut host, url) = host_with_a_party(&dir.path().join("host"));
    let driver = Driver::start();
    let browser = Browser::open(&driver);
    browser.go(&url);

    // Now playing and up next, live.
    browser.wait_text("#live", "that it is live", |t| t == "live");
    browser.wait_text("#now-title", "now playing", |t| t == "Opening");
    assert_eq!(browser.text("#session"), "Rooftop");
    browser.wait_text("#up-next", "an empty queue", |t| {
        t.contains("Nothing queued yet")
    });
    let before = browser.run_async("arguments[0](performance.timeOrigin)");

    // A track the host adds appears without a reload.
    host.ok(
        "track.add",
        json!({"title": "Second Song", "artist": "Host Band", "duration_ms": 1000}),
    );
    browser.wait_text("#up-next", "the host's new track", |t| {
        t.contains("Second Song")
    });
    assert_eq!(
        browser.run_async("arguments[0](performance.timeOrigin)"),
        before,
        "the page was not reloaded"
    );

    // Set a name once; search the host's library and add a track.
    browser.type_into("#name-input", "Ana");
    browser.click("#name-save");
    browser.wait_text("#me", "the phone's name", |t| t.contains("Ana (phone)"));
    browser.type_into("#search-input", "heroes");
    browser.click("#search-go");
    browser.wait_text("#results", "the search result", |t| t.contains("Heroes"));
    browser.click("#results button.add");
    let (state, _) = wait_state(&mut host, "the phone's track in the host's queue", |s| {
        s["queue"]
            .as_array()
            .is_some_and(|q| q.iter().any(|t| t["title"] == "Heroes"))
    });
    let phone_peer = state["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["display_name"] == "Ana (phone)"))
        .map(|p| p["peer_id"].clone())
        .expect("the phone is a participant");
    let heroes = state["queue"]
        .as_array()
        .and_then(|q| q.iter().find(|t| t["title"] == "Heroes"))
        .expect("queued");
    assert_eq!(heroes["added_by"], phone_peer);
    browser.wait_text("#up-next", "who added it", |t| {
        t.contains("Heroes") && t.contains("added by Ana (phone)")
    });

    // A reaction from the page reaches the host (the party screen's source of reactions).
    browser.click("button[data-emoji=\"heart\"]");
    let reaction = wait_event(&mut host, "reaction", |d| d["emoji"] == "heart");
    assert_eq!(reaction["from"], phone_peer);
    browser.wait_text("#now-reactions", "the reaction next to the track", |t| {
        t.contains('❤')
    });

    // The name is remembered by the browser: a reload joins again as the same phone.
    browser.go(&url);
    browser.wait_text("#me", "the remembered name", |t| t.contains("Ana (phone)"));

    // Without the token, the browser gets nothing.
    let (addr, _) = split_url(&url);
    let statuses = browser.run_async(
        "const done = arguments[0];
         Promise.all(['/', '/c/', '/c/00000000000000000000000000000000/'].map(
             p => fetch(p).then(async r => [r.status, (await r.text()).length])))
           .then(done, e => done(String(e)));",
    );
    assert_eq!(statuses, json!([[404, 0], [404, 0], [404, 0]]), "{addr}");

    if let Some(path) = std::env::var_os("WHATNEXT_PHONE_SCREENSHOT") {
        // A fuller queue for the picture: the other library track, then a fresh page.
        let phone = post(&format!("{url}hello"), &json!({"name": "Remy"})).json();
        let found = post(&format!("{url}search"), &json!({"q": "monday"})).json();
        post(
            &format!("{url}add"),
            &json!({"phone": phone["phone"], "track_id": found["tracks"][0]["track_id"]}),
        );
        post(
            &format!("{url}react"),
            &json!({"phone": phone["phone"], "emoji": "fire"}),
        );
        browser.wait_text("#up-next", "the fuller queue", |t| {
            t.contains("Blue Monday")
        });
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::write(&path, browser.screenshot_png()).expect("write the screenshot");
    }
    let png = browser.screenshot_png();
    assert_eq!(&png[1..4], b"PNG", "a PNG screenshot");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let height = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    assert_eq!((width, height), (390, 844), "phone-sized");
}
