//! Shared by the link tests (`link.rs`, `link_root.rs`).

use std::time::Duration;

use hbeat::link::{LinkStatus, Links};
use tokio::time::Instant;

/// The longest any wait in these tests may take before it fails loudly.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `links.status()` until `f` holds, or fails after [`WAIT`] showing the status.
pub async fn wait_status(links: &Links, what: &str, f: impl Fn(&[LinkStatus]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = links.status();
        if f(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for {what}: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
