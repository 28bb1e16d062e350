//! Upstream pools and the algorithms that pick one upstream per request.
//!
//! A [`Pool`] owns its members, their weights, in-flight counts, latency estimates and
//! health flags. [`Pool::pick`] chooses one for a request and counts it in flight;
//! [`Pool::finish`] ends it. Removing a member drains it: it takes no new requests and
//! leaves the pool when its last request finishes, so nothing in flight is dropped.
//!
//! ```
//! use std::time::Instant;
//! use proxy_core::{Algorithm, PickContext, Pool};
//!
//! let mut pool = Pool::new(Algorithm::RoundRobin);
//! let a = pool.add("10.0.0.1:80", 1);
//! let b = pool.add("10.0.0.2:80", 1);
//! let now = Instant::now();
//! let first = pool.pick(&PickContext::default(), now).unwrap();
//! let second = pool.pick(&PickContext::default(), now).unwrap();
//! assert_eq!([first.id, second.id], [a, b]);
//! pool.finish(first.id, None, now);
//! ```

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName};

use crate::hash::{SplitMix64, stable_hash};

/// A member's identity inside one [`Pool`]; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamId(u64);

impl UpstreamId {
    /// The raw number, for logs and metrics labels.
    #[must_use]
    pub fn get(self) -> u64 {
        self.0
    }
}

/// How a pool picks among its available members.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// Each member in turn, ignoring weights.
    RoundRobin,
    /// Smooth weighted round robin: a member of weight 3 among weights 3,1,1 is picked three
    /// times in five, interleaved (a a b a c rather than a a a b c).
    WeightedRoundRobin,
    /// The member with the fewest requests in flight per unit of weight.
    LeastConnections,
    /// Power of two random choices, comparing peak-EWMA latency times (in-flight + 1).
    PeakEwma,
    /// Uniformly random.
    Random,
    /// A consistent-hash ring with `vnodes` points per unit of weight; needs a hash key.
    RingHash {
        /// Points on the ring per unit of weight.
        vnodes: u32,
    },
    /// Maglev hashing with a lookup table of `table_size` entries (a prime well above the
    /// member count, such as 65537); needs a hash key.
    Maglev {
        /// The lookup table's size; should be prime.
        table_size: usize,
    },
}

/// Where a hash-based algorithm finds its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The value of a request header.
    Header(HeaderName),
    /// The value of a request cookie.
    Cookie(String),
    /// The client's address.
    ClientAddress,
}

impl HashKey {
    /// The key bytes for a request, or `None` when the header or cookie is absent (the pool
    /// then falls back to a random pick).
    #[must_use]
    pub fn extract(&self, headers: &HeaderMap, client: IpAddr) -> Option<Vec<u8>> {
        match self {
            Self::Header(name) => headers.get(name).map(|v| v.as_bytes().to_vec()),
            Self::Cookie(name) => cookie_value(headers, name).map(|v| v.as_bytes().to_vec()),
            Self::ClientAddress => Some(client.to_string().into_bytes()),
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
#[must_use]
pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// What the caller knows about a request when picking.
#[derive(Debug, Clone, Default)]
pub struct PickContext<'a> {
    /// The hash key, for [`Algorithm::RingHash`] and [`Algorithm::Maglev`].
    pub hash_key: Option<&'a [u8]>,
    /// The sticky-session cookie's value, when the pool is sticky and the request has one.
    pub sticky: Option<&'a str>,
    /// Members not to pick (those a retry already tried).
    pub exclude: &'a [UpstreamId],
}

/// The outcome of [`Pool::pick`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// The chosen member; pass it to [`Pool::finish`].
    pub id: UpstreamId,
    /// Its address, as given to [`Pool::add`] (shared with the pool: a pick does not
    /// copy it).
    pub address: Arc<str>,
    /// For a sticky pool, the cookie value to set when the request did not already carry
    /// this member's token.
    pub set_sticky: Option<String>,
}

/// A member's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Takes requests.
    Active,
    /// Removed: takes no new requests, leaves when the last in-flight one finishes.
    Draining,
}

/// A read-only view of one member.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberInfo {
    /// Its id.
    pub id: UpstreamId,
    /// Its address.
    pub address: String,
    /// Its weight.
    pub weight: u32,
    /// Active or draining.
    pub state: MemberState,
    /// Requests in flight.
    pub in_flight: u32,
    /// Whether active health checks consider it healthy.
    pub healthy: bool,
    /// Whether outlier detection has ejected it now.
    pub ejected: bool,
    /// Its peak-EWMA latency estimate.
    pub ewma: Duration,
}

#[derive(Debug, Clone)]
struct Member {
    id: UpstreamId,
    address: Arc<str>,
    token: String,
    weight: u32,
    state: MemberState,
    in_flight: u32,
    healthy: bool,
    ejected_until: Option<Instant>,
    current_weight: i64,
    ewma_ns: f64,
    ewma_stamp: Option<Instant>,
}

/// A set of upstreams and the algorithm that picks among them.
#[derive(Debug, Clone)]
pub struct Pool {
    algorithm: Algorithm,
    members: Vec<Member>,
    next_id: u64,
    cursor: usize,
    rng: SplitMix64,
    sticky: bool,
    panic_threshold: f64,
    ewma_decay: Duration,
    default_rtt: Duration,
    ring: Vec<(u64, UpstreamId)>,
    ring_dirty: bool,
    maglev: Vec<UpstreamId>,
    maglev_for: Vec<UpstreamId>,
    /// The candidates' list of the last pick, kept for its memory (a pick allocates
    /// nothing once it has grown).
    candidates: Vec<usize>,
}

impl Pool {
    /// An empty pool.
    #[must_use]
    pub fn new(algorithm: Algorithm) -> Self {
        Self {
            algorithm,
            members: Vec::new(),
            next_id: 0,
            cursor: 0,
            rng: SplitMix64::new(0x5eed),
            sticky: false,
            panic_threshold: 0.0,
            ewma_decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(1),
            ring: Vec::new(),
            ring_dirty: true,
            maglev: Vec::new(),
            maglev_for: Vec::new(),
            candidates: Vec::new(),
        }
    }

    /// Seeds the random source (random, P2C, and the fallback for a missing hash key).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = SplitMix64::new(seed);
        self
    }

    /// Makes the pool sticky: [`Pick::set_sticky`] carries a member token for a cookie, and
    /// a request presenting a live member's token goes back to it.
    #[must_use]
    pub fn with_sticky(mut self, sticky: bool) -> Self {
        self.sticky = sticky;
        self
    }

    /// When fewer than this share of active members are healthy and not ejected, the pool
    /// ignores health and spreads load over all active members (Envoy's "panic mode"):
    /// overloading a few survivors is worse than trying everyone. `0.0` disables it.
    #[must_use]
    pub fn with_panic_threshold(mut self, share: f64) -> Self {
        self.panic_threshold = share.clamp(0.0, 1.0);
        self
    }

    /// The algorithm.
    #[must_use]
    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    /// Adds a member with `weight` (at least 1) and returns its id.
    pub fn add(&mut self, address: impl Into<String>, weight: u32) -> UpstreamId {
        let id = UpstreamId(self.next_id);
        self.next_id += 1;
        let address: Arc<str> = address.into().into();
        let token = format!("{:016x}", stable_hash(address.as_bytes()));
        self.members.push(Member {
            id,
            address,
            token,
            weight: weight.max(1),
            state: MemberState::Active,
            in_flight: 0,
            healthy: true,
            ejected_until: None,
            current_weight: 0,
            ewma_ns: 0.0,
            ewma_stamp: None,
        });
        self.ring_dirty = true;
        id
    }

    /// Starts draining a member: no new requests; it leaves when its in-flight count is zero
    /// (at once if it is idle). Returns `false` for an unknown id.
    pub fn remove(&mut self, id: UpstreamId) -> bool {
        let Some(member) = self.members.iter_mut().find(|m| m.id == id) else {
            return false;
        };
        member.state = MemberState::Draining;
        self.ring_dirty = true;
        self.members
            .retain(|m| m.state == MemberState::Active || m.in_flight > 0);
        true
    }

    /// Sets a member's active-health flag.
    pub fn set_healthy(&mut self, id: UpstreamId, healthy: bool) {
        if let Some(member) = self.members.iter_mut().find(|m| m.id == id) {
            member.healthy = healthy;
        }
    }

    /// Ejects a member until `until` (outlier detection).
    pub fn eject(&mut self, id: UpstreamId, until: Instant) {
        if let Some(member) = self.members.iter_mut().find(|m| m.id == id) {
            member.ejected_until = Some(until);
        }
    }

    /// The members, draining ones included.
    #[must_use]
    pub fn members(&self, now: Instant) -> Vec<MemberInfo> {
        self.members
            .iter()
            .map(|m| MemberInfo {
                id: m.id,
                address: m.address.to_string(),
                weight: m.weight,
                state: m.state,
                in_flight: m.in_flight,
                healthy: m.healthy,
                ejected: m.ejected_until.is_some_and(|u| now < u),
                ewma: Duration::from_nanos(self.ewma_at(m, now) as u64),
            })
            .collect()
    }

    /// The number of members (draining ones included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the pool has no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn available(m: &Member, now: Instant) -> bool {
        m.state == MemberState::Active && m.healthy && m.ejected_until.is_none_or(|u| now >= u)
    }

    /// Fills `list` with the indices of the members a pick may choose from: the available
    /// ones, or every active one in panic mode.
    fn fill_candidates(&self, ctx: &PickContext<'_>, now: Instant, list: &mut Vec<usize>) {
        list.clear();
        list.extend((0..self.members.len()).filter(|&i| {
            self.members
                .get(i)
                .is_some_and(|m| m.state == MemberState::Active && !ctx.exclude.contains(&m.id))
        }));
        let active = list.len();
        let healthy = list
            .iter()
            .filter(|&&i| self.members.get(i).is_some_and(|m| Self::available(m, now)))
            .count();
        let panic = active > 0 && (healthy as f64) < self.panic_threshold * active as f64;
        if !panic && healthy < active {
            list.retain(|&i| self.members.get(i).is_some_and(|m| Self::available(m, now)));
        }
    }

    /// Picks a member for a request and counts it in flight; `None` when no member is
    /// available.
    pub fn pick(&mut self, ctx: &PickContext<'_>, now: Instant) -> Option<Pick> {
        let mut candidates = std::mem::take(&mut self.candidates);
        self.fill_candidates(ctx, now, &mut candidates);
        let pick = self.pick_among(ctx, now, &candidates);
        self.candidates = candidates;
        pick
    }

    /// [`Pool::pick`] among `candidates` (indices into the members).
    fn pick_among(
        &mut self,
        ctx: &PickContext<'_>,
        now: Instant,
        candidates: &[usize],
    ) -> Option<Pick> {
        if candidates.is_empty() {
            return None;
        }
        let mut set_sticky = None;
        let sticky_hit = if self.sticky {
            ctx.sticky.and_then(|token| {
                candidates
                    .iter()
                    .copied()
                    .find(|&i| self.members.get(i).is_some_and(|m| m.token == token))
            })
        } else {
            None
        };
        let index = match sticky_hit {
            Some(i) => i,
            None => {
                let i = self.choose(candidates, ctx.hash_key, now)?;
                if self.sticky {
                    set_sticky = self.members.get(i).map(|m| m.token.clone());
                }
                i
            }
        };
        let member = self.members.get_mut(index)?;
        member.in_flight += 1;
        Some(Pick {
            id: member.id,
            address: member.address.clone(),
            set_sticky,
        })
    }

    fn choose(&mut self, candidates: &[usize], key: Option<&[u8]>, now: Instant) -> Option<usize> {
        match self.algorithm.clone() {
            Algorithm::RoundRobin => {
                let i = candidates.get(self.cursor % candidates.len()).copied();
                self.cursor = self.cursor.wrapping_add(1);
                i
            }
            Algorithm::WeightedRoundRobin => {
                let total: i64 = candidates
                    .iter()
                    .filter_map(|&i| self.members.get(i))
                    .map(|m| i64::from(m.weight))
                    .sum();
                let mut best: Option<usize> = None;
                let mut best_weight = i64::MIN;
                for &i in candidates {
                    if let Some(m) = self.members.get_mut(i) {
                        m.current_weight += i64::from(m.weight);
                        if m.current_weight > best_weight {
                            best_weight = m.current_weight;
                            best = Some(i);
                        }
                    }
                }
                if let Some(m) = best.and_then(|i| self.members.get_mut(i)) {
                    m.current_weight -= total;
                }
                best
            }
            Algorithm::LeastConnections => {
                // Compare in_flight/weight by cross-multiplying; ties go round-robin so equal
                // members share load.
                let start = self.cursor;
                self.cursor = self.cursor.wrapping_add(1);
                let n = candidates.len();
                let mut best: Option<(usize, u64, u64)> = None;
                for k in 0..n {
                    let Some(&i) = candidates.get((start + k) % n) else {
                        continue;
                    };
                    let Some(m) = self.members.get(i) else {
                        continue;
                    };
                    let (load, weight) = (u64::from(m.in_flight), u64::from(m.weight));
                    if best.is_none_or(|(_, bl, bw)| load * bw < bl * weight) {
                        best = Some((i, load, weight));
                    }
                }
                best.map(|(i, _, _)| i)
            }
            Algorithm::PeakEwma => {
                if candidates.len() == 1 {
                    return candidates.first().copied();
                }
                let a = self.rng.below(candidates.len());
                let mut b = self.rng.below(candidates.len() - 1);
                if b >= a {
                    b += 1;
                }
                let (ia, ib) = (candidates.get(a).copied()?, candidates.get(b).copied()?);
                let cost = |pool: &Self, i: usize| {
                    pool.members.get(i).map_or(f64::MAX, |m| {
                        pool.ewma_at(m, now) * f64::from(m.in_flight + 1)
                    })
                };
                Some(if cost(self, ia) <= cost(self, ib) {
                    ia
                } else {
                    ib
                })
            }
            Algorithm::Random => candidates.get(self.rng.below(candidates.len())).copied(),
            Algorithm::RingHash { vnodes } => {
                let Some(key) = key else {
                    return candidates.get(self.rng.below(candidates.len())).copied();
                };
                self.rebuild_ring(vnodes);
                let hash = stable_hash(key);
                let start = self.ring.partition_point(|(h, _)| *h < hash);
                let len = self.ring.len();
                (0..len)
                    .filter_map(|k| self.ring.get((start + k) % len))
                    .find_map(|(_, id)| {
                        candidates
                            .iter()
                            .copied()
                            .find(|&i| self.members.get(i).is_some_and(|m| m.id == *id))
                    })
            }
            Algorithm::Maglev { table_size } => {
                let Some(key) = key else {
                    return candidates.get(self.rng.below(candidates.len())).copied();
                };
                let ids: Vec<UpstreamId> = candidates
                    .iter()
                    .filter_map(|&i| self.members.get(i).map(|m| m.id))
                    .collect();
                if ids != self.maglev_for {
                    self.maglev = maglev_table(
                        &candidates
                            .iter()
                            .filter_map(|&i| self.members.get(i))
                            .map(|m| (m.id, &*m.address, m.weight))
                            .collect::<Vec<_>>(),
                        table_size.clamp(1, 1 << 20),
                    );
                    self.maglev_for = ids;
                }
                let slot = (stable_hash(key) % self.maglev.len().max(1) as u64) as usize;
                let id = self.maglev.get(slot)?;
                candidates
                    .iter()
                    .copied()
                    .find(|&i| self.members.get(i).is_some_and(|m| m.id == *id))
            }
        }
    }

    fn rebuild_ring(&mut self, vnodes: u32) {
        if !self.ring_dirty {
            return;
        }
        self.ring.clear();
        for m in self
            .members
            .iter()
            .filter(|m| m.state == MemberState::Active)
        {
            for v in 0..vnodes.max(1).saturating_mul(m.weight) {
                let point = stable_hash(format!("{}#{v}", m.address).as_bytes());
                self.ring.push((point, m.id));
            }
        }
        self.ring.sort_unstable();
        self.ring_dirty = false;
    }

    fn ewma_at(&self, m: &Member, _now: Instant) -> f64 {
        // A member with no sample yet costs the default RTT, so new members get traffic.
        match m.ewma_stamp {
            None => nanos(self.default_rtt),
            Some(_) => m.ewma_ns.max(1.0),
        }
    }

    /// Ends a request on member `id`. `rtt` is its latency when it produced a response
    /// (fed to peak-EWMA); a draining member leaves when this was its last request.
    pub fn finish(&mut self, id: UpstreamId, rtt: Option<Duration>, now: Instant) {
        let decay = nanos(self.ewma_decay);
        let Some(m) = self.members.iter_mut().find(|m| m.id == id) else {
            return;
        };
        m.in_flight = m.in_flight.saturating_sub(1);
        if let Some(rtt) = rtt {
            let sample = nanos(rtt);
            match m.ewma_stamp {
                None => m.ewma_ns = sample,
                Some(stamp) => {
                    // Peak EWMA: jump up to a slower sample at once, decay towards faster ones
                    // with weight exp(-elapsed / decay).
                    if sample > m.ewma_ns {
                        m.ewma_ns = sample;
                    } else {
                        let elapsed = nanos(now.saturating_duration_since(stamp));
                        let w = decay_weight(elapsed / decay);
                        m.ewma_ns = m.ewma_ns * w + sample * (1.0 - w);
                    }
                }
            }
            m.ewma_stamp = Some(now);
        }
        if m.state == MemberState::Draining && m.in_flight == 0 {
            self.members.retain(|m| m.id != id);
        }
    }
}

/// A duration in nanoseconds, as a float. `as_nanos() as f64` converts a `u128`, a library
/// call of some 45 instructions; this runs a few times for every request.
fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// `exp(-x)` for `x >= 0`: for the small `x` of requests microseconds apart under a decay of
/// seconds, by its Taylor series to the fourth power, whose error (under `x^5 / 120`, below
/// 1e-17 for `x < 1e-3`) is under a float's precision; else by `exp`, a library call of a
/// hundred instructions or more.
fn decay_weight(x: f64) -> f64 {
    if (0.0..1e-3).contains(&x) {
        1.0 - x * (1.0 - x * (0.5 - x * (1.0 / 6.0 - x / 24.0)))
    } else {
        (-x).exp()
    }
}

/// Builds a Maglev lookup table (Eisenbud et al., NSDI 2016, section 3.4) over `members`,
/// giving each a share proportional to its weight.
fn maglev_table(members: &[(UpstreamId, &str, u32)], size: usize) -> Vec<UpstreamId> {
    let Some(first) = members.first() else {
        return Vec::new();
    };
    let m = size as u64;
    let perms: Vec<(u64, u64)> = members
        .iter()
        .map(|(_, addr, _)| {
            let offset = stable_hash(addr.as_bytes()) % m;
            let skip = if m > 1 {
                stable_hash(format!("skip:{addr}").as_bytes()) % (m - 1) + 1
            } else {
                1
            };
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; members.len()];
    let mut table: Vec<Option<UpstreamId>> = vec![None; size];
    let mut filled = 0usize;
    let max_weight = members.iter().map(|(_, _, w)| *w).max().unwrap_or(1).max(1);
    let mut credit = vec![0u32; members.len()];
    'outer: loop {
        for (i, (id, _, weight)) in members.iter().enumerate() {
            // Weighted Maglev: a member takes a turn only when its credit allows.
            let (Some(c), Some(n), Some(&(offset, skip))) =
                (credit.get_mut(i), next.get_mut(i), perms.get(i))
            else {
                continue;
            };
            *c += *weight;
            if *c < max_weight {
                continue;
            }
            *c -= max_weight;
            // With a prime size every permutation visits every slot; with another size a
            // permutation may cycle, so after `size` tries take the first free slot.
            let mut placed = false;
            while *n < m {
                let slot = ((offset + *n * skip) % m) as usize;
                *n += 1;
                if let Some(entry) = table.get_mut(slot).filter(|e| e.is_none()) {
                    *entry = Some(*id);
                    placed = true;
                    break;
                }
            }
            if !placed && let Some(entry) = table.iter_mut().find(|e| e.is_none()) {
                *entry = Some(*id);
            }
            filled += 1;
            if filled == size {
                break 'outer;
            }
        }
    }
    table.into_iter().map(|e| e.unwrap_or(first.0)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ids(pool: &mut Pool, n: usize, ctx: &PickContext<'_>, now: Instant) -> Vec<u64> {
        (0..n)
            .map(|_| {
                let p = pool.pick(ctx, now).unwrap();
                pool.finish(p.id, None, now);
                p.id.get()
            })
            .collect()
    }

    #[test]
    fn round_robin_cycles() {
        let now = Instant::now();
        let mut pool = Pool::new(Algorithm::RoundRobin);
        for a in ["a", "b", "c"] {
            pool.add(a, 1);
        }
        assert_eq!(
            ids(&mut pool, 6, &PickContext::default(), now),
            [0, 1, 2, 0, 1, 2]
        );
    }

    #[test]
    fn smooth_weighted_round_robin_interleaves() {
        let now = Instant::now();
        let mut pool = Pool::new(Algorithm::WeightedRoundRobin);
        pool.add("a", 5);
        pool.add("b", 1);
        pool.add("c", 1);
        // The nginx sequence for weights 5,1,1.
        assert_eq!(
            ids(&mut pool, 7, &PickContext::default(), now),
            [0, 0, 1, 0, 2, 0, 0]
        );
    }

    #[test]
    fn least_connections_prefers_idle_by_weight() {
        let now = Instant::now();
        let mut pool = Pool::new(Algorithm::LeastConnections);
        let a = pool.add("a", 1);
        let b = pool.add("b", 2);
        let ctx = PickContext::default();
        let p1 = pool.pick(&ctx, now).unwrap();
        let p2 = pool.pick(&ctx, now).unwrap();
        let p3 = pool.pick(&ctx, now).unwrap();
        let mut got = [p1.id, p2.id, p3.id];
        got.sort();
        // b (weight 2) takes two of three concurrent requests.
        assert_eq!(got, [a, b, b]);
    }

    #[test]
    fn decay_weights_match_exp() {
        for x in [0.0, 1e-9, 3.7e-6, 2.5e-4, 9.99e-4, 1e-3, 0.02, 1.0, 7.5] {
            let (ours, exact) = (decay_weight(x), (-x).exp());
            assert!(
                (ours - exact).abs() <= 1e-15 * exact.max(1.0),
                "{x}: {ours} {exact}"
            );
        }
        assert!((nanos(Duration::new(3, 250)) - 3_000_000_250.0).abs() < 1e-3);
    }

    #[test]
    fn peak_ewma_avoids_the_slow_member() {
        let now = Instant::now();
        let mut pool = Pool::new(Algorithm::PeakEwma).with_seed(1);
        let fast = pool.add("fast", 1);
        let slow = pool.add("slow", 1);
        let ctx = PickContext::default();
        let p = pool.pick(&ctx, now).unwrap();
        pool.finish(
            p.id,
            Some(Duration::from_millis(if p.id == fast { 1 } else { 200 })),
            now,
        );
        let other = if p.id == fast { slow } else { fast };
        // Force a sample on the other one too.
        let mut seen_other = false;
        for _ in 0..10 {
            let q = pool.pick(&ctx, now).unwrap();
            let rtt = if q.id == fast { 1 } else { 200 };
            if q.id == other {
                seen_other = true;
            }
            pool.finish(q.id, Some(Duration::from_millis(rtt)), now);
        }
        assert!(seen_other);
        let picks = ids(&mut pool, 100, &ctx, now);
        assert!(picks.iter().all(|&i| i == fast.get()), "{picks:?}");
    }

    #[test]
    fn random_spreads() {
        let now = Instant::now();
        let mut pool = Pool::new(Algorithm::Random).with_seed(3);
        pool.add("a", 1);
        pool.add("b", 1);
        let picks = ids(&mut pool, 1000, &PickContext::default(), now);
        let zeros = picks.iter().filter(|&&i| i == 0).count();
        assert!((400..600).contains(&zeros), "{zeros}");
    }

    fn consistency(algorithm: Algorithm) {
        let now = Instant::now();
        let mut pool = Pool::new(algorithm);
        let members: Vec<_> = (0..5)
            .map(|i| pool.add(format!("10.0.0.{i}:80"), 1))
            .collect();
        let keys: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
        let route = |pool: &mut Pool| -> Vec<UpstreamId> {
            keys.iter()
                .map(|k| {
                    let ctx = PickContext {
                        hash_key: Some(k.as_bytes()),
                        ..Default::default()
                    };
                    let p = pool.pick(&ctx, now).unwrap();
                    pool.finish(p.id, None, now);
                    p.id
                })
                .collect()
        };
        let before = route(&mut pool);
        assert_eq!(before, route(&mut pool), "same key, same member");
        for m in &members {
            let share = before.iter().filter(|id| *id == m).count();
            assert!((200..700).contains(&share), "share {share}");
        }
        // Removing one member moves only its keys (and, for Maglev, a small extra share).
        pool.set_healthy(members[2], false);
        let after = route(&mut pool);
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a && **b != members[2])
            .count();
        assert!(after.iter().all(|id| *id != members[2]));
        assert!(
            moved < 200,
            "moved {moved} keys not owned by the removed member"
        );
    }

    #[test]
    fn ring_hash_is_consistent() {
        consistency(Algorithm::RingHash { vnodes: 100 });
    }

    #[test]
    fn maglev_is_consistent() {
        consistency(Algorithm::Maglev { table_size: 65537 });
    }

    #[test]
    fn hash_key_from_header_cookie_and_address() {
        let mut headers = HeaderMap::new();
        headers.insert("x-user", "42".parse().unwrap());
        headers.insert(http::header::COOKIE, "a=1; sid=xyz".parse().unwrap());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            HashKey::Header(HeaderName::from_static("x-user")).extract(&headers, ip),
            Some(b"42".to_vec())
        );
        assert_eq!(
            HashKey::Cookie("sid".into()).extract(&headers, ip),
            Some(b"xyz".to_vec())
        );
        assert_eq!(HashKey::Cookie("none".into()).extract(&headers, ip), None);
        assert_eq!(
            HashKey::ClientAddress.extract(&headers, ip),
            Some(b"192.0.2.1".to_vec())
        );
    }

    #[test]
    fn sticky_cookie_returns_to_member() {
        let now = Instant::now();
        let mut pool = Pool::new(Algorithm::RoundRobin).with_sticky(true);
        pool.add("a", 1);
        let b = pool.add("b", 1);
        let first = pool.pick(&PickContext::default(), now).unwrap();
        let token = first.set_sticky.clone().unwrap();
        for _ in 0..5 {
            let ctx = PickContext {
                sticky: Some(&token),
                ..Default::default()
            };
            let p = pool.pick(&ctx, now).unwrap();
            assert_eq!(p.id, first.id);
            assert_eq!(p.set_sticky, None);
        }
        // The sticky member goes away: the request moves and gets a new token.
        pool.set_healthy(first.id, false);
        let ctx = PickContext {
            sticky: Some(&token),
            ..Default::default()
        };
        let p = pool.pick(&ctx, now).unwrap();
        assert_eq!(p.id, b);
        assert!(p.set_sticky.is_some_and(|t| t != token));
    }

    #[test]
    fn draining_keeps_in_flight_and_takes_no_new_requests() {
        let now = Instant::now();
        let mut pool = Pool::new(Algorithm::RoundRobin);
        let a = pool.add("a", 1);
        let b = pool.add("b", 1);
        let pa = pool.pick(&PickContext::default(), now).unwrap();
        assert_eq!(pa.id, a);
        assert!(pool.remove(a));
        assert_eq!(pool.len(), 2, "a stays while its request is in flight");
        for _ in 0..4 {
            let p = pool.pick(&PickContext::default(), now).unwrap();
            assert_eq!(p.id, b);
            pool.finish(p.id, None, now);
        }
        pool.finish(a, None, now);
        assert_eq!(pool.len(), 1);
        assert!(pool.remove(b));
        assert!(pool.is_empty());
        assert!(pool.pick(&PickContext::default(), now).is_none());
    }

    #[test]
    fn ejection_health_exclusion_and_panic() {
        let now = Instant::now();
        let mut pool = Pool::new(Algorithm::RoundRobin).with_panic_threshold(0.5);
        let a = pool.add("a", 1);
        let b = pool.add("b", 1);
        let c = pool.add("c", 1);
        pool.eject(a, now + Duration::from_secs(5));
        let picks = ids(&mut pool, 4, &PickContext::default(), now);
        assert!(!picks.contains(&a.get()));
        let excl = [b];
        let ctx = PickContext {
            exclude: &excl,
            ..Default::default()
        };
        assert_eq!(pool.pick(&ctx, now).unwrap().id, c);
        pool.finish(c, None, now);
        // Two of three out: below the 50% panic threshold, all are used again.
        pool.set_healthy(b, false);
        let picks = ids(&mut pool, 6, &PickContext::default(), now);
        assert!(picks.contains(&a.get()) && picks.contains(&b.get()));
        // After the ejection ends, a returns even without panic.
        let later = now + Duration::from_secs(6);
        let mut pool2 = Pool::new(Algorithm::RoundRobin);
        let x = pool2.add("x", 1);
        pool2.eject(x, now + Duration::from_secs(5));
        assert!(pool2.pick(&PickContext::default(), now).is_none());
        assert_eq!(pool2.pick(&PickContext::default(), later).unwrap().id, x);
    }

    #[test]
    fn maglev_weights() {
        let table = maglev_table(&[(UpstreamId(0), "a", 3), (UpstreamId(1), "b", 1)], 1009);
        let a = table.iter().filter(|i| i.0 == 0).count();
        assert!((700..810).contains(&a), "{a}");
    }
}
