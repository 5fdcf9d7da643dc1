//! `GET /api/events`: the session and resources as server-sent events — a snapshot, then
//! updates carrying only the resources that changed, at most [`MAX_RATE_HZ`] a second.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::views::{ResourceView, SessionView};
use super::{AppState, Shared, session_view};
use crate::engine::{EngineState, ResourceState};

/// Updates sent per second at most; changes in between are coalesced.
const MAX_RATE_HZ: u64 = 20;

#[derive(Serialize)]
struct Snapshot {
    session: SessionView,
    resources: Vec<ResourceView>,
}

#[derive(Serialize)]
struct Update {
    session: SessionView,
    order: Vec<String>,
    resources: Vec<ResourceView>,
}

/// What one client was last sent.
struct Follower {
    shared: AppState,
    states: watch::Receiver<EngineState>,
    sent: Option<HashMap<String, Arc<ResourceState>>>,
    next_send: Instant,
}

impl Follower {
    async fn next_event(&mut self) -> Option<Event> {
        if self.sent.is_some() {
            self.states.changed().await.ok()?;
            tokio::time::sleep_until(self.next_send).await;
        }
        self.next_send = Instant::now() + Duration::from_millis(1000 / MAX_RATE_HZ);
        let state = self.states.borrow_and_update().clone();
        let session = session_view(&self.shared);
        let event = match self.sent.take() {
            None => json_event(
                "snapshot",
                &Snapshot {
                    session,
                    resources: state
                        .resources
                        .iter()
                        .map(|r| ResourceView::new(r))
                        .collect(),
                },
            ),
            Some(before) => json_event(
                "update",
                &Update {
                    session,
                    order: state.resources.iter().map(|r| r.name.clone()).collect(),
                    resources: state
                        .resources
                        .iter()
                        .filter(|r| before.get(&r.name).is_none_or(|b| !Arc::ptr_eq(b, r)))
                        .map(|r| ResourceView::new(r))
                        .collect(),
                },
            ),
        };
        self.sent = Some(
            state
                .resources
                .iter()
                .map(|r| (r.name.clone(), r.clone()))
                .collect(),
        );
        Some(event)
    }
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_else(|_| "{}".into()))
}

pub(super) async fn stream(
    State(shared): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let follower = Follower {
        states: Shared::store(&shared).subscribe(),
        shared,
        sent: None,
        next_send: Instant::now(),
    };
    let events = futures_util::stream::unfold(follower, |mut f| async move {
        let event = f.next_event().await?;
        Some((Ok(event), f))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
