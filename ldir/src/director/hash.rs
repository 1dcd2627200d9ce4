//! A fast hasher for the director's maps keyed by reals and services, which a check result looks
//! up on every result (thousands a second): the standard SipHash cost ~1,100 instructions a
//! result for its two lookups of a `(ServiceKey, SocketAddr)`, about a tenth of a whole check
//! (callgrind, `ldir/examples/check_load.rs`).
//!
//! Each word is added to the state and mixed by a folded multiply (the 128-bit product's halves
//! xor-ed, as foldhash and ahash do): one multiplication that carries every input bit into the low
//! bits, where hashbrown picks buckets. A plain multiply (FxHash) only carries bits upwards, so
//! IPv6 addresses, hashed as big-endian bytes whose varying part ends up at the top of a word,
//! piled up in a few buckets (the test below caught 1,024 keys in one). It is not keyed and so
//! not resistant to chosen keys: the keys here come from the configuration files, never from the
//! network.

use std::hash::{BuildHasherDefault, Hasher};

/// An odd constant with well-spread bits (rustc-hash 2's multiplier).
const K: u64 = 0xf135_7aea_2e62_a9c5;

/// The hasher; see the module's documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, x: u64) {
        let m = u128::from(self.0.wrapping_add(x) ^ K) * u128::from(K);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        // The length too: "ab" then "c" differs from "a" then "bc".
        self.add(bytes.len() as u64);
    }
    fn write_u8(&mut self, i: u8) {
        self.add(i.into());
    }
    fn write_u16(&mut self, i: u16) {
        self.add(i.into());
    }
    fn write_u32(&mut self, i: u32) {
        self.add(i.into());
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap`'s hasher builder of [`FastHasher`]s.
pub type FastBuild = BuildHasherDefault<FastHasher>;

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastBuild>;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;
    use std::net::SocketAddr;

    use common::ipvs::ServiceKey;

    use super::*;

    fn hash<T: std::hash::Hash>(t: &T) -> u64 {
        FastBuild::default().hash_one(t)
    }

    /// 65,536 reals of one service (a full ldirectord range), v4 and v6: no two hash alike, and
    /// the low bits (hashbrown's bucket index) spread over a 64k table without piling up.
    #[test]
    fn reals_of_a_big_range_hash_apart_and_spread() {
        let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
        for v6 in [false, true] {
            let mut full = HashSet::new();
            let mut buckets = vec![0u32; 1 << 16];
            for i in 0..65_536u32 {
                let addr: SocketAddr = if v6 {
                    SocketAddr::new(
                        std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)).into(),
                        443,
                    )
                } else {
                    SocketAddr::new(std::net::Ipv4Addr::from(0xc612_0000 | i).into(), 80)
                };
                let h = hash(&(key, addr));
                full.insert(h);
                buckets[(h & 0xffff) as usize] += 1;
            }
            assert_eq!(full.len(), 65_536, "v6 {v6}: full hashes collide");
            // Random placement of 65,536 keys in 65,536 buckets: the fullest holds ~8.
            let worst = buckets.iter().max().unwrap();
            assert!(*worst <= 16, "v6 {v6}: {worst} keys in one bucket");
        }
    }

    #[test]
    fn byte_strings_are_told_apart_by_where_they_split() {
        let mut a = FastHasher::default();
        a.write(b"ab");
        a.write(b"c");
        let mut b = FastHasher::default();
        b.write(b"a");
        b.write(b"bc");
        assert_ne!(a.finish(), b.finish());
        assert_ne!(hash(&"192.0.2.1"), hash(&"192.0.2.10"));
    }

    #[test]
    fn a_map_with_it_finds_what_it_holds() {
        let mut m: FastMap<(ServiceKey, SocketAddr), u32> = FastMap::default();
        let key = ServiceKey::tcp("192.0.2.100:80".parse().unwrap());
        for i in 0..1000u32 {
            let a = SocketAddr::new(std::net::Ipv4Addr::from(0xc612_0000 | i).into(), 80);
            m.insert((key, a), i);
        }
        for i in 0..1000u32 {
            let a = SocketAddr::new(std::net::Ipv4Addr::from(0xc612_0000 | i).into(), 80);
            assert_eq!(m.get(&(key, a)), Some(&i));
        }
        let other = ServiceKey::tcp("192.0.2.101:80".parse().unwrap());
        let a = SocketAddr::new(std::net::Ipv4Addr::from(0xc612_0000).into(), 80);
        assert_eq!(m.get(&(other, a)), None);
    }
}
