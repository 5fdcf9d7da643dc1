//! The engine as a library, driven with hand-built Tiltfile results: triggers of manual and
//! auto_init=False resources, disabled resources, and reload diffs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tiltrs::engine::{
    self, BuildReason, BuildResult, EngineConfig, EngineError, EngineState, Mode,
};
use tiltrs::model::{LocalSpec, Resource, ResourceType, TiltfileResult, TriggerMode};

fn local(name: &str, cmd: &str) -> Resource {
    let mut r = Resource::new(name, ResourceType::Local);
    r.local = Some(LocalSpec {
        cmd: vec!["sh".into(), "-c".into(), cmd.into()],
        serve_cmd: vec![],
        dir: std::env::temp_dir(),
        serve_dir: std::env::temp_dir(),
        deps: vec![],
        ignore: vec![],
        env: BTreeMap::new(),
        serve_env: BTreeMap::new(),
        allow_parallel: true,
        readiness_probe: None,
    });
    r
}

type Shared = Arc<Mutex<TiltfileResult>>;

fn start(result: TiltfileResult) -> (engine::EngineHandle, tokio::task::JoinHandle<()>, Shared) {
    let shared: Shared = Arc::new(Mutex::new(result));
    let s2 = shared.clone();
    let loader = move || Ok(s2.lock().map(|r| r.clone()).unwrap_or_default());
    let mut config = EngineConfig::new(
        PathBuf::from("/nonexistent/Tiltfile"),
        Arc::new(loader),
        Mode::Up,
    );
    config.watch = false;
    config.stop_grace = Duration::from_secs(5);
    let (handle, task) = engine::start(config);
    (handle, task, shared)
}

/// Engines in one process share the registry of process groups that shutdown sweeps, so the
/// tests here run one at a time (tiltrs itself runs one engine per process).
static ONE_ENGINE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits (event-driven, on the state channel) until `pred` holds.
async fn until(handle: &engine::EngineHandle, pred: impl Fn(&EngineState) -> bool) -> EngineState {
    let mut rx = handle.store().subscribe();
    let wait = async {
        loop {
            {
                let st = rx.borrow_and_update();
                if pred(&st) {
                    return st.clone();
                }
            }
            if rx.changed().await.is_err() {
                panic!("engine stopped");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("state never reached")
}

fn builds(st: &EngineState, name: &str) -> usize {
    st.resource(name).map_or(0, |r| r.history.len())
}

fn ok(st: &EngineState, name: &str) -> bool {
    st.resource(name)
        .and_then(|r| r.last_build())
        .is_some_and(|b| b.result == Some(BuildResult::Success))
}

#[tokio::test]
async fn triggers_run_manual_and_auto_init_false_resources() {
    let _one = ONE_ENGINE_AT_A_TIME.lock().await;
    let mut manual = local("manual", "true");
    manual.trigger_mode = TriggerMode::Manual;
    let mut lazy = local("lazy", "true");
    lazy.auto_init = false;
    let mut off = local("off", "true");
    off.enabled = false;
    let result = TiltfileResult {
        resources: vec![local("auto", "true"), manual, lazy, off],
        ..Default::default()
    };
    let (handle, task, _) = start(result);
    let st = until(&handle, |s| ok(s, "auto") && ok(s, "manual")).await;
    assert_eq!(builds(&st, "lazy"), 0);
    assert_eq!(builds(&st, "off"), 0);

    handle.trigger("lazy").await.expect("trigger lazy");
    let st = until(&handle, |s| ok(s, "lazy")).await;
    assert_eq!(
        st.resource("lazy")
            .and_then(|r| r.last_build())
            .map(|b| b.reason.clone()),
        Some(BuildReason::Trigger)
    );
    handle.trigger("manual").await.expect("trigger manual");
    until(&handle, |s| builds(s, "manual") == 2 && ok(s, "manual")).await;

    assert_eq!(
        handle.trigger("off").await,
        Err(EngineError::Disabled("off".into()))
    );
    assert_eq!(
        handle.trigger("nope").await,
        Err(EngineError::UnknownResource("nope".into()))
    );
    handle.shutdown(false);
    task.await.expect("engine task");
}

#[tokio::test]
async fn reload_restarts_changed_adds_new_and_keeps_unchanged() {
    let _one = ONE_ENGINE_AT_A_TIME.lock().await;
    let result = TiltfileResult {
        resources: vec![local("same", "true"), local("changes", "echo one")],
        ..Default::default()
    };
    let (handle, task, shared) = start(result);
    until(&handle, |s| ok(s, "same") && ok(s, "changes")).await;
    {
        let mut r = shared.lock().expect("lock");
        r.resources = vec![
            local("same", "true"),
            local("changes", "echo two"),
            local("added", "true"),
        ];
    }
    handle.reload();
    let st = until(&handle, |s| {
        builds(s, "changes") == 2 && ok(s, "changes") && ok(s, "added")
    })
    .await;
    assert_eq!(builds(&st, "same"), 1);
    assert_eq!(
        st.resource("changes")
            .and_then(|r| r.last_build())
            .map(|b| b.reason.clone()),
        Some(BuildReason::TiltfileChange)
    );
    assert_eq!(st.tiltfile.history.len(), 2);
    handle.shutdown(false);
    task.await.expect("engine task");
}

#[tokio::test]
async fn failed_builds_record_the_error() {
    let _one = ONE_ENGINE_AT_A_TIME.lock().await;
    let result = TiltfileResult {
        resources: vec![local("bad", "exit 4")],
        ..Default::default()
    };
    let (handle, task, _) = start(result);
    let st = until(&handle, |s| builds(s, "bad") == 1).await;
    let b = st
        .resource("bad")
        .and_then(|r| r.last_build())
        .cloned()
        .expect("build");
    assert_eq!(b.result, Some(BuildResult::Failure));
    assert_eq!(
        b.error.as_deref(),
        Some("Command \"exit 4\" failed: exit status 4")
    );
    assert!(b.end.is_some() && b.duration.is_some());
    handle.shutdown(false);
    task.await.expect("engine task");
}
