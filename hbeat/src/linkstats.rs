//! Per peer and link, for `hbeat status`: how many of the peer's recent messages this link
//! carried (loss) and how far its copies arrive behind the first copy on any link (lag).
//!
//! A sender gives each message one sequence number and sends a copy on every link, so a link's
//! loss is the share of the last [`WINDOW`] sequence numbers it did not deliver — a message lost
//! on every link counts against every link. The newest [`IN_FLIGHT`] numbers are left out: a
//! slower link's copy may still be on its way. Lag is relative (there is no common clock): a
//! link that is 30 ms behind the others shows 30 ms; with one link it is 0. Memory is fixed per
//! peer and link; only configured peers get here (the daemon drops unknown senders first).

use std::time::Duration;

/// Sequence numbers a link's loss is computed over.
pub const WINDOW: u64 = 128;
/// The newest sequence numbers not yet counted as lost (copies may be in flight).
pub const IN_FLIGHT: u64 = 2;

/// What [`LinkStats::report`] says about one link of one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkFigures {
    /// Percent of the peer's recent messages this link did not deliver.
    pub loss_pct: f64,
    /// How far this link's copies arrive behind the first copy (moving average), microseconds.
    pub lag_us: u64,
}

#[derive(Debug, Default)]
struct LinkWindow {
    /// Bit `i`: the message numbered `newest - i` arrived on this link.
    seen: u128,
    /// Moving average of the lag (7/8 old, 1/8 new), microseconds.
    lag_us: u64,
}

#[derive(Debug)]
struct PeerWindow {
    incarnation: u64,
    /// The first number seen in this incarnation (the window is shorter until it fills).
    first: u64,
    newest: u64,
    /// When each recent number first arrived, by `seq % WINDOW`.
    arrived: Vec<(u64, Duration)>,
    links: Vec<(u8, LinkWindow)>,
}

impl PeerWindow {
    fn new(incarnation: u64, seq: u64) -> PeerWindow {
        PeerWindow {
            incarnation,
            first: seq,
            newest: seq,
            arrived: vec![(u64::MAX, Duration::ZERO); WINDOW as usize],
            links: Vec::new(),
        }
    }
}

/// The figures of every configured peer's links.
#[derive(Debug, Default)]
pub struct LinkStats {
    peers: Vec<(String, PeerWindow)>,
}

impl LinkStats {
    pub fn new() -> LinkStats {
        LinkStats::default()
    }

    /// An authenticated, non-replayed copy of `peer`'s message `(incarnation, seq)` arrived on my
    /// link `link` at `now` (any monotonic time).
    pub fn observe(&mut self, peer: &str, incarnation: u64, seq: u64, link: u8, now: Duration) {
        let idx = match self.peers.iter().position(|(p, _)| p == peer) {
            Some(i) => i,
            None => {
                self.peers
                    .push((peer.to_owned(), PeerWindow::new(incarnation, seq)));
                self.peers.len() - 1
            }
        };
        let w = &mut self.peers[idx].1;
        if incarnation > w.incarnation {
            *w = PeerWindow::new(incarnation, seq);
        } else if incarnation < w.incarnation {
            return;
        }
        if seq > w.newest {
            let shift = seq - w.newest;
            for (_, l) in &mut w.links {
                l.seen = if shift >= 128 { 0 } else { l.seen << shift };
            }
            w.newest = seq;
        }
        w.first = w.first.min(seq);
        let age = w.newest - seq;
        if age >= WINDOW {
            return;
        }
        let slot = &mut w.arrived[(seq % WINDOW) as usize];
        let lag = if slot.0 == seq {
            now.saturating_sub(slot.1)
        } else {
            *slot = (seq, now);
            Duration::ZERO
        };
        let l = match w.links.iter().position(|(id, _)| *id == link) {
            Some(i) => &mut w.links[i].1,
            None => {
                w.links.push((link, LinkWindow::default()));
                &mut w.links.last_mut().expect("just pushed").1
            }
        };
        l.seen |= 1u128 << age;
        let lag = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        l.lag_us = l.lag_us - l.lag_us / 8 + lag / 8;
    }

    /// The figures of `peer`'s `link`, `None` before anything arrived from that peer.
    pub fn report(&self, peer: &str, link: u8) -> Option<LinkFigures> {
        let w = &self.peers.iter().find(|(p, _)| p == peer)?.1;
        // Numbers old enough to judge: from IN_FLIGHT back to the window's end or the first.
        let span = (w.newest - w.first + 1).min(WINDOW);
        let judged = span.saturating_sub(IN_FLIGHT);
        let (seen, lag_us) = w
            .links
            .iter()
            .find(|(id, _)| *id == link)
            .map_or((0, 0), |(_, l)| {
                let mask = if judged == 0 {
                    0
                } else {
                    (u128::MAX >> (128 - judged)) << IN_FLIGHT
                };
                (u64::from((l.seen & mask).count_ones()), l.lag_us)
            });
        let loss_pct = if judged == 0 {
            0.0
        } else {
            100.0 * (judged - seen) as f64 / judged as f64
        };
        Some(LinkFigures { loss_pct, lag_us })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn every_copy_on_both_links_is_no_loss_and_a_slower_link_shows_its_lag() {
        let mut s = LinkStats::new();
        for seq in 1..=300 {
            let t = ms(seq * 20);
            s.observe("b", 5, seq, 0, t);
            s.observe("b", 5, seq, 1, t + ms(8));
        }
        let fast = s.report("b", 0).unwrap();
        let slow = s.report("b", 1).unwrap();
        assert_eq!(fast.loss_pct, 0.0);
        assert_eq!(slow.loss_pct, 0.0);
        assert_eq!(fast.lag_us, 0);
        // The moving average has converged on 8 ms (within its integer rounding).
        assert!((7_900..=8_000).contains(&slow.lag_us), "{slow:?}");
        assert_eq!(s.report("c", 0), None);
    }

    #[test]
    fn a_link_that_drops_every_third_copy_shows_a_third_lost_the_other_none() {
        let mut s = LinkStats::new();
        for seq in 1..=1000 {
            s.observe("b", 1, seq, 0, ms(seq * 20));
            if seq % 3 != 0 {
                s.observe("b", 1, seq, 1, ms(seq * 20));
            }
        }
        assert_eq!(s.report("b", 0).unwrap().loss_pct, 0.0);
        let lossy = s.report("b", 1).unwrap().loss_pct;
        assert!((32.0..=35.0).contains(&lossy), "{lossy}");
    }

    #[test]
    fn a_message_lost_on_every_link_counts_against_each_and_a_late_copy_is_not_lost() {
        let mut s = LinkStats::new();
        for seq in (1..=20).filter(|&q| q != 10) {
            s.observe("b", 1, seq, 0, ms(seq));
        }
        // 20 numbers, the newest 2 in flight: 18 judged, 1 of them (10) lost.
        let f = s.report("b", 0).unwrap();
        assert!((f.loss_pct - 100.0 / 18.0).abs() < 1e-9, "{f:?}");
        // Link 1 delivers only 19 and 20 (still "in flight"): the 18 judged are all missing.
        s.observe("b", 1, 19, 1, ms(25));
        s.observe("b", 1, 20, 1, ms(26));
        assert_eq!(s.report("b", 1).unwrap().loss_pct, 100.0);
        // A copy arriving late, but within the window, fills its place.
        s.observe("b", 1, 18, 1, ms(30));
        assert!((s.report("b", 1).unwrap().loss_pct - 100.0 * 17.0 / 18.0).abs() < 1e-9);
    }

    #[test]
    fn a_new_incarnation_starts_over_and_an_old_one_is_ignored() {
        let mut s = LinkStats::new();
        for seq in 1..=50 {
            s.observe("b", 1, seq, 0, ms(seq));
        }
        // Restarted: numbers begin again; only link 1 has carried them so far.
        for seq in 1..=10 {
            s.observe("b", 2, seq, 1, ms(100 + seq));
        }
        assert_eq!(s.report("b", 0).unwrap().loss_pct, 100.0);
        assert_eq!(s.report("b", 1).unwrap().loss_pct, 0.0);
        s.observe("b", 1, 60, 0, ms(200));
        assert_eq!(
            s.report("b", 0).unwrap().loss_pct,
            100.0,
            "the old incarnation is gone"
        );
    }

    #[test]
    fn a_jump_past_the_window_and_a_copy_older_than_it_are_handled() {
        let mut s = LinkStats::new();
        s.observe("b", 1, 1, 0, ms(1));
        s.observe("b", 1, 1_000_000, 0, ms(2));
        s.observe("b", 1, 5, 0, ms(3)); // far behind the window: not counted
        let f = s.report("b", 0).unwrap();
        assert!(f.loss_pct > 99.0, "{f:?}");
        s.observe("b", 1, u64::MAX, 0, ms(4));
        assert!(s.report("b", 0).unwrap().loss_pct > 99.0);
    }
}
