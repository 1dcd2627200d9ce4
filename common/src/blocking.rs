//! Running a blocking call from async code without holding a tokio worker: the call moves to
//! tokio's blocking pool ([`tokio::task::spawn_blocking`]) and the caller awaits its result.
//! The privileged edges (IPVS, rtnetlink, ARP probes) are synchronous and bounded in time; their
//! async faces ([`AsyncIpvs`](crate::ipvs::AsyncIpvs), [`AsyncAddresses`](crate::net::AsyncAddresses),
//! [`AsyncGarp`](crate::net::AsyncGarp)) are built on this. Deliberately not here: cancellation
//! (a started kernel request runs to its end; dropping the future only drops its result).

/// Runs `f` on the blocking pool and returns what it returned. A panic in `f` is resumed in the
/// caller, as if `f` had run inline.
///
/// # Panics
/// When called outside a tokio runtime, or when the runtime shuts down before `f` ran.
pub async fn off_runtime<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a blocking kernel call was cancelled by the runtime shutting down: {e}"),
    }
}
