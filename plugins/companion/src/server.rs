//! The HTTP side: axum on a small tokio runtime of its own thread. Every path is
//! `/c/<token>/<what>`; anything else, or a wrong token, is an empty 404. The page's state
//! arrives from Bevy through a `watch` channel and goes out as Server-Sent Events; phones'
//! requests go to Bevy over a channel and wait for its answer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use whatnext_core::prelude::{AppWaker, Emoji, TrackId};
use whatnext_core::session::now_ms;

use crate::phones::{Phones, TooManyPhones, clean_name, same_secret};
use crate::rate::{Cost, RateLimiter};
use crate::{PhoneAsk, PhoneRequest};

/// Largest request body read, in bytes: every request is a little JSON.
pub const MAX_BODY_BYTES: usize = 4096;
/// Most event streams open at once, all phones together.
pub const MAX_STREAMS: usize = 64;
/// Most event streams open at once from one address.
pub const MAX_STREAMS_PER_ADDRESS: usize = 4;
/// How long a request waits for the app to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

const PAGE_HTML: &str = include_str!("page/index.html");
const PAGE_JS: &str = include_str!("page/app.js");
const PAGE_CSS: &str = include_str!("page/style.css");

/// What the page may show now, with the token that must be in the link.
#[derive(Debug)]
pub struct Published {
    /// The link's token.
    pub token: String,
    /// The page's state as JSON.
    pub json: String,
}

/// What the handlers share.
struct Shared {
    published: watch::Sender<Arc<Published>>,
    requests: crossbeam_channel::Sender<PhoneRequest>,
    waker: AppWaker,
    phones: Mutex<Phones>,
    limiter: Mutex<RateLimiter>,
    streams: Mutex<HashMap<IpAddr, usize>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler that panicked mid-update leaves plain counters: still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running page server; dropping it stops the thread and closes every connection.
pub struct Server {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The addresses it listens on (the first is the one in the link).
    pub addrs: Vec<SocketAddr>,
}

impl Server {
    /// Listens on `ips` (the first with `port`, or any free one when it is taken or 0; the
    /// others on the same port) and serves the page for `published`.
    pub(crate) fn start(
        ips: &[IpAddr],
        port: u16,
        published: Published,
        requests: crossbeam_channel::Sender<PhoneRequest>,
        waker: AppWaker,
    ) -> io::Result<Server> {
        let mut listeners = Vec::new();
        let mut port = port;
        for ip in ips {
            let bound = std::net::TcpListener::bind((*ip, port)).or_else(|e| {
                // The usual port is taken (another party on this machine): any free one.
                if listeners.is_empty() && port != 0 {
                    std::net::TcpListener::bind((*ip, 0))
                } else {
                    Err(e)
                }
            });
            match bound {
                Ok(listener) => {
                    listener.set_nonblocking(true)?;
                    port = listener.local_addr()?.port();
                    listeners.push(listener);
                }
                // The first address decides; another that fails is logged and left out.
                Err(e) if !listeners.is_empty() => {
                    tracing::warn!(%ip, "the phone page cannot listen here: {e}")
                }
                Err(e) => return Err(e),
            }
        }
        if listeners.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "no local network address to listen on",
            ));
        }
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let (published, _) = watch::channel(Arc::new(published));
        let shared = Arc::new(Shared {
            published,
            requests,
            waker,
            phones: Mutex::default(),
            limiter: Mutex::default(),
            streams: Mutex::default(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = Router::new()
            .fallback(handle)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        let thread = std::thread::Builder::new()
            .name("companion".into())
            .spawn(move || {
                runtime.block_on(async move {
                    for listener in listeners {
                        match tokio::net::TcpListener::from_std(listener) {
                            Ok(listener) => {
                                let app = app.clone();
                                tokio::spawn(async move {
                                    if let Err(e) = axum::serve(listener, app).await {
                                        tracing::warn!("the phone page stopped serving: {e}");
                                    }
                                });
                            }
                            Err(e) => tracing::warn!("the phone page cannot listen: {e}"),
                        }
                    }
                    let _ = stopped.await;
                });
                // Dropping the runtime here ends every connection, event streams included.
            })?;
        Ok(Server {
            shared,
            stop: Some(stop),
            thread: Some(thread),
            addrs,
        })
    }

    /// Shows `published` to every open page (a new state, or a new token that ends the
    /// streams of the old one).
    pub fn publish(&self, published: Published) {
        self.shared.published.send_replace(Arc::new(published));
    }

    /// The token now in the link.
    pub fn token(&self) -> String {
        self.shared.published.borrow().token.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type SharedState = axum::extract::State<Arc<Shared>>;

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// Every request: the rate limit, then the token, then what it asks for.
async fn handle(
    axum::extract::State(shared): SharedState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    body: Body,
) -> Response {
    let mut response = route(shared, peer.ip(), method, uri, body).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The token is in the address: never send it on to another site.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn route(shared: Arc<Shared>, ip: IpAddr, method: Method, uri: Uri, body: Body) -> Response {
    // Searching only reads; every other POST changes the session.
    let what = if method == Method::POST && !uri.path().ends_with("/search") {
        Cost::Action
    } else {
        Cost::Read
    };
    if !lock(&shared.limiter).allow(ip, what, now_ms()) {
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    }
    let Some(rest) = uri.path().strip_prefix("/c/") else {
        return not_found();
    };
    let (token, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let current = shared.published.borrow().token.clone();
    if !same_secret(token, &current) {
        return not_found();
    }
    match (method, rest) {
        (Method::GET, "") => page(PAGE_HTML, "text/html; charset=utf-8"),
        (Method::GET, "app.js") => page(PAGE_JS, "text/javascript; charset=utf-8"),
        (Method::GET, "style.css") => page(PAGE_CSS, "text/css; charset=utf-8"),
        (Method::GET, "events") => events(shared, ip, current),
        (Method::POST, "search" | "hello" | "add" | "react") => {
            let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
                Ok(body) => body,
                Err(_) => {
                    return error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("a request is at most {MAX_BODY_BYTES} bytes"),
                    );
                }
            };
            let Ok(args) = serde_json::from_slice::<Value>(&body) else {
                return error(StatusCode::BAD_REQUEST, "the request is not JSON");
            };
            match rest {
                "search" => search(&shared, &args).await,
                "hello" => hello(&shared, &args).await,
                "add" => add(&shared, &args).await,
                _ => react(&shared, &args).await,
            }
        }
        _ => not_found(),
    }
}

fn page(text: &'static str, content_type: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], text).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    response
}

/// Asks the app and waits for its answer.
async fn ask(shared: &Shared, ask: PhoneAsk) -> Response {
    let (reply, answer) = oneshot::channel();
    if shared.requests.send(PhoneRequest { ask, reply }).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the party is closing");
    }
    shared.waker.wake();
    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Ok(Ok(value))) => axum::Json(value).into_response(),
        Ok(Ok(Err((status, message)))) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
        ),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the party did not answer in time; try again",
        ),
    }
}

fn text_arg<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

async fn search(shared: &Shared, args: &Value) -> Response {
    let query = text_arg(args, "q").unwrap_or("");
    if let Err(e) = whatnext_core::limits::check_text("a search", query) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, e.message);
    }
    ask(
        shared,
        PhoneAsk::Search {
            query: query.to_owned(),
        },
    )
    .await
}

async fn hello(shared: &Shared, args: &Value) -> Response {
    let name = match clean_name(text_arg(args, "name").unwrap_or("")) {
        Ok(name) => name,
        Err(bad) => return error(StatusCode::BAD_REQUEST, bad.0),
    };
    let registered = lock(&shared.phones).hello(text_arg(args, "phone"), name);
    let (key, phone) = match registered {
        Ok(registered) => registered,
        Err(TooManyPhones) => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "this party has as many phones as it takes",
            );
        }
    };
    let answer = ask(
        shared,
        PhoneAsk::Hello {
            peer: phone.peer.clone(),
            name: phone.name.clone(),
        },
    )
    .await;
    if !answer.status().is_success() {
        return answer;
    }
    axum::Json(json!({"phone": key, "peer_id": phone.peer, "name": phone.name})).into_response()
}

/// The phone a request names by its key, if it said hello.
fn phone_of(shared: &Shared, args: &Value) -> Option<crate::phones::Phone> {
    text_arg(args, "phone").and_then(|key| lock(&shared.phones).get(key).cloned())
}

fn unknown_phone() -> Response {
    error(StatusCode::FORBIDDEN, "say your name first")
}

async fn add(shared: &Shared, args: &Value) -> Response {
    let Some(phone) = phone_of(shared, args) else {
        return unknown_phone();
    };
    let Some(track_id) = text_arg(args, "track_id").and_then(|t| t.parse::<TrackId>().ok()) else {
        return error(StatusCode::BAD_REQUEST, "`track_id` is not a track id");
    };
    ask(
        shared,
        PhoneAsk::Add {
            peer: phone.peer,
            track_id,
        },
    )
    .await
}

async fn react(shared: &Shared, args: &Value) -> Response {
    let Some(phone) = phone_of(shared, args) else {
        return unknown_phone();
    };
    let Some(emoji) = text_arg(args, "emoji").and_then(Emoji::from_name) else {
        return error(StatusCode::BAD_REQUEST, "not one of the six reactions");
    };
    ask(
        shared,
        PhoneAsk::React {
            peer: phone.peer,
            emoji,
        },
    )
    .await
}

/// Counts an open event stream; uncounts it when the stream is dropped.
struct StreamSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl StreamSlot {
    fn take(shared: Arc<Shared>, ip: IpAddr) -> Option<StreamSlot> {
        let mut streams = lock(&shared.streams);
        let total: usize = streams.values().sum();
        let mine = streams.get(&ip).copied().unwrap_or(0);
        if total >= MAX_STREAMS || mine >= MAX_STREAMS_PER_ADDRESS {
            return None;
        }
        streams.insert(ip, mine + 1);
        drop(streams);
        Some(StreamSlot { shared, ip })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = lock(&self.shared.streams);
        if let Some(n) = streams.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.ip);
            }
        }
    }
}

/// The page's state now, then again each time it changes; ends when the token changes.
fn events(shared: Arc<Shared>, ip: IpAddr, token: String) -> Response {
    let Some(slot) = StreamSlot::take(shared.clone(), ip) else {
        return StatusCode::TOO_MANY_REQUESTS.into_response();
    };
    let receiver = shared.published.subscribe();
    let stream = futures::stream::unfold(
        (receiver, slot, token, true),
        |(mut receiver, slot, token, first)| async move {
            if !first && receiver.changed().await.is_err() {
                return None;
            }
            let published = receiver.borrow_and_update().clone();
            if !same_secret(&published.token, &token) {
                return None; // the link was rotated: this page's link is gone
            }
            // The host's clock as it sends, so the page places the progress bar right.
            let data = format!(r#"{{"sent_ms":{},"state":{}}}"#, now_ms(), published.json);
            let event = Event::default().event("state").data(data);
            Some((Ok::<_, Infallible>(event), (receiver, slot, token, false)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
