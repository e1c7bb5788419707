//! A CRM stand-in: a real HTTP server on 127.0.0.1 that creates one ticket per `Idempotency-Key`
//! (409 for a key it has seen, as Zendesk and Stripe do), verifies every request's Standard Webhooks
//! signature with its own HMAC (not the handler's code), and answers as a test scripts it.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The signing secret every test uses (24 random bytes, base64).
pub(crate) const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One scripted answer.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// Create the ticket (201), or 409 if the key was seen.
    Create,
    /// This status, with these headers, creating nothing.
    Status(u16, Vec<(&'static str, String)>),
    /// Wait this long, then create.
    Hang(Duration),
}

/// A request as the CRM saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) at: Instant,
    pub(crate) key: Option<String>,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: serde_json::Value,
    pub(crate) signature_ok: bool,
    pub(crate) status: u16,
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<Answer>,
    /// Answer for every request while set (an outage).
    always: Option<Answer>,
    /// Delay before every creation.
    delay: Duration,
    tickets: BTreeMap<String, serde_json::Value>,
    seen: Vec<Seen>,
}

/// The running stand-in.
#[derive(Clone)]
pub(crate) struct Crm {
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _server: Arc<actix_web::dev::ServerHandle>,
}

impl Crm {
    /// Starts a CRM on a random port of 127.0.0.1.
    pub(crate) fn start() -> Crm {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                .default_service(web::to(receive))
        })
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Crm {
            addr,
            state,
            _server: Arc::new(handle),
        }
    }

    /// `http://127.0.0.1:<port>/tickets`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/tickets", self.addr)
    }

    /// Answers the next requests in this order, then creates as usual.
    pub(crate) fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    /// Answers every request this way until [`Crm::recover`].
    pub(crate) fn outage(&self, answer: Answer) {
        self.state.lock().unwrap().always = Some(answer);
    }

    /// Ends an outage.
    pub(crate) fn recover(&self) {
        self.state.lock().unwrap().always = None;
    }

    /// Waits this long before creating each ticket (calls stay in flight).
    pub(crate) fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Tickets by idempotency key.
    pub(crate) fn tickets(&self) -> BTreeMap<String, serde_json::Value> {
        self.state.lock().unwrap().tickets.clone()
    }

    /// Every request so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Waits until `count` tickets exist; panics with what there is after `limit`.
    pub(crate) async fn wait_for_tickets(&self, count: usize, limit: Duration) {
        let started = Instant::now();
        loop {
            let have = self.tickets().len();
            if have >= count {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "{have} of {count} tickets after {limit:?}; {} requests",
                self.seen().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let headers: BTreeMap<String, String> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let key = headers.get("idempotency-key").cloned();
    let signature_ok = verify(&headers, &body);
    let answer = {
        let mut state = state.lock().unwrap();
        match state.always.clone() {
            Some(answer) => answer,
            None => state.script.pop_front().unwrap_or(Answer::Create),
        }
    };
    let delay = state.lock().unwrap().delay;
    let parsed = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let record = |status: u16| {
        state.lock().unwrap().seen.push(Seen {
            at: Instant::now(),
            key: key.clone(),
            headers: headers.clone(),
            body: parsed.clone(),
            signature_ok,
            status,
        });
    };
    let create = |state: &Mutex<State>| {
        let mut state = state.lock().unwrap();
        let Some(key) = key.clone() else {
            return 400;
        };
        if !signature_ok {
            return 401;
        }
        if state.tickets.contains_key(&key) {
            return 409;
        }
        state.tickets.insert(key, parsed.clone());
        201
    };
    let status = match answer {
        Answer::Create => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            create(&state)
        }
        Answer::Hang(time) => {
            tokio::time::sleep(time).await;
            create(&state)
        }
        Answer::Status(status, extra) => {
            record(status);
            let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
            for (name, value) in extra {
                response.insert_header((name, value));
            }
            return response.body("scripted failure");
        }
    };
    record(status);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(serde_json::json!({"status": status}))
}

/// The Standard Webhooks check, written from the spec: HMAC-SHA256 over `id.timestamp.body` with the
/// base64-decoded secret, any `v1,` signature matching, timestamp within 5 minutes.
fn verify(headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    let (Some(id), Some(timestamp), Some(signatures)) = (
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(ts) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if ts.abs_diff(now) > 300 {
        return false;
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    signatures
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}
