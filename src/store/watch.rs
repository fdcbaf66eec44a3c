//! Hot reload of the policy set from a directory ([`StoreBuilder::watch_policies`]): a
//! background thread polls the directory and applies its files as the operator whenever
//! they change. An edit that does not validate (a file half-written by an editor, a typo)
//! keeps the active set, is written to the policy log as refused, and is tried again as soon
//! as the files change again.
//!
//! [`StoreBuilder::watch_policies`]: super::StoreBuilder::watch_policies

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::policy_set::{commit, log};
use super::{AuditOutcome, Inner};
use crate::model::Actor;
use crate::policy::Policies;

/// How often the directory is read.
pub(crate) const POLL: Duration = Duration::from_millis(250);

/// Starts the watcher of `dir` for the store of `inner`; it stops when the store's file is
/// closed (the last store and gateway handle dropped).
pub(crate) fn spawn(inner: &Arc<Inner>, dir: PathBuf) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new()
        .name("orgstore-policies".into())
        .spawn(move || {
            // The files of the last attempt (applied or refused), and the last read error.
            let mut tried: Option<Vec<(String, String)>> = None;
            let mut read_error: Option<String> = None;
            loop {
                let Some(inner) = weak.upgrade() else { break };
                poll(&inner, &dir, &mut tried, &mut read_error);
                drop(inner);
                std::thread::sleep(POLL);
            }
        });
    // Without a thread nothing is watched; the active set stays as it is.
    drop(spawned);
}

fn poll(
    inner: &Inner,
    dir: &std::path::Path,
    tried: &mut Option<Vec<(String, String)>>,
    read_error: &mut Option<String>,
) {
    let files = match Policies::read_files(dir) {
        Ok(f) => f,
        Err(e) => {
            let msg = e.to_string();
            if read_error.as_deref() != Some(msg.as_str()) {
                let _ = refuse(inner, &msg);
                *read_error = Some(msg);
            }
            return;
        }
    };
    *read_error = None;
    if tried.as_ref() == Some(&files) {
        return;
    }
    *tried = Some(files.clone());
    if inner.policies.load().operator_files() == files {
        return;
    }
    match Policies::from_files(&files) {
        // An error (storage) is retried at the next change of the files.
        Ok(next) => {
            if let Err(e) = commit(inner, &Actor::Operator, next, files, None) {
                let _ = refuse(inner, &e.to_string());
            }
        }
        Err(e) => {
            let _ = refuse(inner, &e.to_string());
        }
    }
}

fn refuse(inner: &Inner, why: &str) -> Result<(), crate::error::Error> {
    let _writer = inner.writer.lock();
    log(
        inner,
        &Actor::Operator,
        format!("watched policy directory not applied (the active set stays): {why}"),
        AuditOutcome::Denied,
    )
}
