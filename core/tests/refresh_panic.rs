//! A panic during a refresh (here: in the repository) fails that refresh like
//! any error; it never wedges the provider: the next refresh runs.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use dataprotection::clock::{Clock, ManualClock};
use dataprotection::repository::{InMemoryXmlRepository, StorePrecondition, XmlRepository};
use dataprotection::xml::Element;
use dataprotection::{DataProtectionProvider, Result};
use time::Duration;
use time::macros::datetime;

/// Panics on reads while `panic` is set.
#[derive(Debug, Default)]
struct Panicky {
    inner: InMemoryXmlRepository,
    panic: AtomicBool,
    reads: AtomicUsize,
}

#[async_trait]
impl XmlRepository for Panicky {
    async fn get_all_elements(&self) -> Result<Vec<Element>> {
        assert!(
            !self.panic.load(Ordering::SeqCst),
            "injected panic in the repository"
        );
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_all_elements().await
    }
    async fn store_element(&self, element: &Element, name: &str) -> Result<()> {
        self.inner.store_element(element, name).await
    }
    async fn store_element_if(
        &self,
        element: &Element,
        name: &str,
        still_needed: StorePrecondition<'_>,
    ) -> Result<bool> {
        self.inner
            .store_element_if(element, name, still_needed)
            .await
    }
    fn describe(&self) -> String {
        "panicky".into()
    }
}

/// Waits for `done`, up to a deadline generous enough for a loaded 2-core
/// CI machine (it catches a hang; it never measures a timing).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + StdDuration::from_secs(120);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_background_refresh_does_not_wedge_the_provider() {
    let clock = Arc::new(ManualClock::new(datetime!(2030-01-01 0:00 UTC)));
    let repo = Arc::new(Panicky::default());
    let p = DataProtectionProvider::builder()
        .repository(repo.clone())
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let protector = p.create_protector("panic");
    let payload = protector.protect(b"kept").unwrap();

    // The refresh is due and the repository panics: the hot path schedules a
    // background refresh, which fails (and backs off) without unwinding.
    repo.panic.store(true, Ordering::SeqCst);
    clock.advance(Duration::days(2));
    let due = clock.now();
    protector.protect(b"x").unwrap();
    eventually("the failed refresh backs off", || p.next_refresh() > due).await;
    assert!(
        p.last_refresh_error()
            .is_some_and(|e| e.to_string().contains("panicked"))
    );
    assert_eq!(
        protector.unprotect(&payload).unwrap(),
        b"kept",
        "previous ring kept"
    );

    // Once the repository behaves, the next background refresh runs.
    repo.panic.store(false, Ordering::SeqCst);
    let reads = repo.reads.load(Ordering::SeqCst);
    clock.advance(Duration::hours(1));
    let after_backoff = clock.now();
    protector.protect(b"y").unwrap();
    eventually("the next background refresh runs", || {
        repo.reads.load(Ordering::SeqCst) > reads
            && p.next_refresh() > after_backoff + Duration::hours(1)
    })
    .await;
    assert!(p.last_refresh_error().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_awaited_refresh_is_an_error() {
    let repo = Arc::new(Panicky::default());
    let p = DataProtectionProvider::builder()
        .repository(repo.clone())
        .build()
        .await
        .unwrap();
    repo.panic.store(true, Ordering::SeqCst);
    let err = p.refresh().await.unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    repo.panic.store(false, Ordering::SeqCst);
    p.refresh().await.unwrap();
}
