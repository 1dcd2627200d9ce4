//! Fuzz target for `hbeat::frame::decode`: arbitrary bytes must never panic, never be accepted
//! unless they are a canonical frame, and never make decode allocate more than the frame can hold.
//!
//! Random bytes almost never carry a valid HMAC, which would leave the field parser unexercised, so
//! each input is decoded twice: as it is (the header, size and HMAC checks), and "sealed": its last
//! 32 bytes replaced by the right HMAC for the key its header names, so the field parser, the
//! cluster check and the encoder run on every mutation. A sealed input that decodes must re-encode
//! to exactly the same bytes.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use hbeat::frame::{self, MAX_FRAME, MAX_HELD, Reject, TAG_LEN};
use hbeat::keys::{Key, KeyRing};
use hmac::Mac;
use libfuzzer_sys::fuzz_target;

/// Counts the bytes requested by allocations, so decode's allocations can be bounded.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through to System.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed through to System.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through to System.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SECRET_1: [u8; 32] = [0x11; 32];
const SECRET_7: [u8; 32] = [0x77; 32];

fn ring() -> KeyRing {
    KeyRing::new(vec![Key::new(1, &SECRET_1), Key::new(7, &SECRET_7)]).unwrap()
}

/// Decodes and checks every promise decode makes about its result.
fn check(data: &[u8], keys: &KeyRing) -> Result<(), Reject> {
    let before = ALLOCATED.load(Ordering::Relaxed);
    let res = frame::decode(data, keys, "lb");
    let allocated = ALLOCATED.load(Ordering::Relaxed) - before;
    // The message's strings are copies of frame bytes; the three name lists (held, request,
    // unready) add one String header per entry, at most MAX_HELD each.
    let bound = data.len() + 3 * MAX_HELD * std::mem::size_of::<String>();
    assert!(
        allocated <= bound,
        "decode allocated {allocated} bytes for a {}-byte frame",
        data.len()
    );
    if let Err(
        Reject::Truncated
        | Reject::Oversized
        | Reject::BadMagic
        | Reject::BadVersion(_)
        | Reject::UnknownKey(_)
        | Reject::BadMac,
    ) = res
    {
        // Refused before the HMAC proved the sender: nothing may have been allocated for it.
        assert_eq!(
            allocated, 0,
            "decode allocated before authenticating: {res:?}"
        );
    }
    let msg = res?;
    assert!(data.len() <= MAX_FRAME);
    assert_eq!(msg.cluster, "lb");
    let key = keys.get(data[3]).expect("accepted with a listed key");
    let again = frame::encode_with(&msg, key).expect("a decoded message re-encodes");
    assert_eq!(
        again, data,
        "decode accepted a non-canonical frame: {msg:?}"
    );
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let keys = ring();
    let _ = check(data, &keys);
    if data.len() >= TAG_LEN + 4 && data.len() <= MAX_FRAME {
        let secret = match data[3] {
            1 => SECRET_1,
            7 => SECRET_7,
            _ => return,
        };
        let mut sealed = data.to_vec();
        let body = sealed.len() - TAG_LEN;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&secret).unwrap();
        mac.update(&sealed[..body]);
        sealed[body..].copy_from_slice(&mac.finalize().into_bytes());
        match check(&sealed, &keys) {
            Err(Reject::BadMac) => panic!("a correctly sealed frame was refused as BadMac"),
            Err(Reject::UnknownKey(id)) => panic!("key {id} is listed"),
            _ => {}
        }
    }
});
