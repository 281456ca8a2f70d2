//! The servers under test and how each one spells "subscribe" and "publish".
//!
//! Herald is measured with everything a production deployment has switched on (JWT auth,
//! publish key); the peers are measured the way their own set-ups in `shared/peers/` run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// `herald serve` (needs `--jwt-secret` and `--publish-key`).
    Herald,
    /// The floor: `shared/peers/rawsse`.
    Rawsse,
    /// nginx + Nchan: `shared/peers/nchan`.
    Nchan,
    /// The seed's Express server: `shared/peers/express-seed`.
    Express,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Herald => "herald",
            Self::Rawsse => "rawsse",
            Self::Nchan => "nchan",
            Self::Express => "express",
        }
    }

    /// Can this server replay missed events from a `Last-Event-ID`?
    pub fn resumes(self) -> bool {
        matches!(self, Self::Herald | Self::Nchan)
    }

    /// Does it accept many events in one publish request?
    pub fn batches(self) -> bool {
        self == Self::Herald
    }
}

/// Where a published event goes.
#[derive(Debug, Clone, Copy)]
pub enum Dest {
    User(usize),
    All,
}

/// A server and the credentials to talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub host: String,
    pub jwt_secret: String,
    pub publish_key: String,
    /// Herald: publish every event with `"retain": true`.
    pub retain: bool,
    /// Herald: give every publish request its own `Idempotency-Key`.
    pub idempotency_keys: bool,
    /// TCP or TLS.
    pub transport: crate::transport::Transport,
    /// Users are named this and a number (`--user-prefix`).
    pub user_prefix: String,
}

/// One HTTP request as bytes-to-be: method and path, extra headers, body.
pub struct PublishRequest {
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Target {
    /// The name of user number `index`: the prefix and the number.
    pub fn user_name(&self, index: usize) -> String {
        format!("{}{index}", self.user_prefix)
    }

    /// The raw HTTP/1.1 request that opens stream number `index` for `user`.
    pub fn subscribe_request(&self, user: &str, last_event_id: Option<&str>) -> String {
        let host = &self.host;
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        match self.kind {
            Kind::Herald => format!(
                "GET /events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\
                 Authorization: Bearer {}\r\n{resume}\r\n",
                self.token(user)
            ),
            Kind::Rawsse => format!("GET /sub/{user} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            Kind::Nchan => format!(
                "GET /sub/{user} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n{resume}\r\n"
            ),
            Kind::Express => {
                format!("GET /api/events?user={user} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n")
            }
        }
    }

    /// The channel a stream of `user` listens on: Nchan has no "everyone", so in broadcast
    /// runs its streams all join one channel.
    pub fn channel(&self, user: usize, broadcast: bool) -> String {
        if broadcast && self.kind == Kind::Nchan {
            "all".to_owned()
        } else {
            self.user_name(user)
        }
    }

    /// A publish of `payloads` (one event each) to `dest`; `payloads.len() > 1` only for
    /// servers that batch. `seq` (the first event's sequence number) makes idempotency keys unique.
    pub fn publish_request(&self, dest: Dest, payloads: &[String], seq: u64) -> PublishRequest {
        match self.kind {
            Kind::Herald => {
                let events: Vec<serde_json::Value> = payloads
                    .iter()
                    .map(|data| {
                        let mut item = match dest {
                            Dest::User(u) => {
                                serde_json::json!({"user": self.user_name(u), "event": "b", "data": data})
                            }
                            Dest::All => serde_json::json!({"event": "b", "data": data}),
                        };
                        if self.retain {
                            item["retain"] = serde_json::Value::Bool(true);
                        }
                        item
                    })
                    .collect();
                let body = if events.len() == 1 {
                    serde_json::to_vec(&events[0])
                } else {
                    serde_json::to_vec(&events)
                };
                let mut headers = vec![
                    ("authorization", format!("Bearer {}", self.publish_key)),
                    ("content-type", "application/json".to_owned()),
                ];
                if self.idempotency_keys {
                    headers.push(("idempotency-key", format!("bench-{seq}")));
                }
                PublishRequest {
                    path: "/publish".to_owned(),
                    headers,
                    body: body.unwrap_or_default(),
                }
            }
            Kind::Rawsse | Kind::Nchan => {
                let channel = match dest {
                    Dest::User(u) => self.user_name(u),
                    Dest::All => "all".to_owned(),
                };
                PublishRequest {
                    path: format!("/pub/{channel}"),
                    headers: vec![("content-type", "text/plain".to_owned())],
                    body: payloads.concat().into_bytes(),
                }
            }
            Kind::Express => PublishRequest {
                path: match dest {
                    Dest::User(u) => format!("/publish?user={}&event=b", self.user_name(u)),
                    Dest::All => "/publish?event=b".to_owned(),
                },
                headers: vec![("content-type", "text/plain".to_owned())],
                body: payloads.concat().into_bytes(),
            },
        }
    }

    fn token(&self, user: &str) -> String {
        let exp = SystemTime::now()
            .checked_add(Duration::from_secs(24 * 3600))
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let claims = serde_json::json!({"sub": user, "exp": exp});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.jwt_secret.as_bytes()),
        )
        .unwrap_or_default()
    }
}
