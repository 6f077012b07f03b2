//! The sorted score table behind every metric: one group per distinct score, or, once coarsened,
//! per distinct key with its lowest `shift` bits dropped.
//!
//! Scores are staged as `key << 32 | component size` (size 0 = normal), sorted, run-length
//! encoded and merged in place into the table. When the table would exceed its capacity, keys
//! lose their lowest bit until it fits (see the module doc of `eval`).

/// The f32 → u32 map that orders like the floats: flip all bits of negatives, set the sign bit
/// of positives. `-0.0` maps as `+0.0` (they compare equal, so they tie as in scikit-learn).
pub(crate) fn key_of(v: f32) -> u32 {
    let v = if v == 0.0 { 0.0 } else { v };
    let b = v.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The inverse of [`key_of`].
pub(crate) fn value_of(key: u32) -> f32 {
    let b = if key & 0x8000_0000 != 0 { key & 0x7FFF_FFFF } else { !key };
    f32::from_bits(b)
}

/// One group of samples: a single distinct score, or, once the table is coarsened, the scores
/// whose keys agree above the dropped bits (their order inside is then unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Group {
    /// The smallest key in the group.
    pub klo: u32,
    /// The largest key in the group.
    pub khi: u32,
    /// Normal samples.
    pub neg: u64,
    /// Anomalous samples.
    pub pos: u64,
    /// Σ 1/|component| over the anomalous pixels (the PRO weight).
    pub weight: f64,
}

impl Group {
    fn absorb(&mut self, o: &Group) {
        self.klo = self.klo.min(o.klo);
        self.khi = self.khi.max(o.khi);
        self.neg += o.neg;
        self.pos += o.pos;
        self.weight += o.weight;
    }

    /// The smallest score in the group.
    pub fn lo(&self) -> f32 {
        value_of(self.klo)
    }

    /// The largest score in the group.
    pub fn hi(&self) -> f32 {
        value_of(self.khi)
    }

    /// Whether the group holds more than one distinct score (its order inside is then unknown).
    pub fn mixed(&self) -> bool {
        self.klo < self.khi
    }
}

/// The bytes one group takes.
pub(crate) const GROUP_BYTES: usize = std::mem::size_of::<Group>();

/// Sorted groups plus the totals the metrics need.
#[derive(Clone, Debug)]
pub(crate) struct ScoreTable {
    /// Ascending, disjoint key ranges; all keys of a group agree above the lowest `shift` bits.
    pub groups: Vec<Group>,
    /// Low key bits ignored when grouping (0: one group per distinct score).
    pub shift: u32,
    /// Normal samples.
    pub neg: u64,
    /// Anomalous samples.
    pub pos: u64,
    /// Connected components (pixel tables only).
    pub components: u64,
    /// The smallest score (meaningless when empty).
    pub min: f32,
    /// The largest score (meaningless when empty).
    pub max: f32,
    /// Most groups kept.
    capacity: usize,
    /// Staged `key << 32 | size` entries.
    staging: Vec<u64>,
    /// Most entries staged before a merge.
    staging_capacity: usize,
}

impl ScoreTable {
    /// An empty table keeping at most `capacity` groups (at least 1) and staging at most
    /// `staging_capacity` samples (at least 1) between merges.
    pub fn new(capacity: usize, staging_capacity: usize) -> Self {
        ScoreTable {
            groups: Vec::new(),
            shift: 0,
            neg: 0,
            pos: 0,
            components: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            capacity: capacity.max(1),
            staging: Vec::new(),
            staging_capacity: staging_capacity.max(1),
        }
    }

    /// The peak bytes of the table and its staging buffer: during a merge the table holds up to
    /// `capacity + staging` groups.
    pub fn memory_bound_bytes(&self) -> usize {
        self.capacity
            .saturating_add(self.staging_capacity)
            .saturating_mul(GROUP_BYTES)
            .saturating_add(self.staging_capacity.saturating_mul(8))
    }

    /// Adds one finite score; `size` is 0 for a normal sample, else the size of its component
    /// (1 for an anomalous image).
    pub fn push(&mut self, score: f32, size: u32) {
        debug_assert!(score.is_finite());
        self.min = self.min.min(score);
        self.max = self.max.max(score);
        if size == 0 {
            self.neg += 1;
        } else {
            self.pos += 1;
        }
        if self.staging.capacity() == 0 {
            self.staging.reserve_exact(self.staging_capacity.min(1 << 24));
        }
        self.staging.push((u64::from(key_of(score)) << 32) | u64::from(size));
        if self.staging.len() >= self.staging_capacity {
            self.flush();
        }
    }

    /// A key with its lowest `shift` bits dropped.
    fn coarse(&self, key: u32) -> u32 {
        key.checked_shr(self.shift).unwrap_or(0)
    }

    /// The group of the staged run (same coarse key) ending (exclusive) at `end`, and where the
    /// run starts.
    fn run_before(&self, end: usize) -> (Group, usize) {
        let key_at = |i: usize| (self.staging[i] >> 32) as u32;
        let (khi, c) = (key_at(end - 1), self.coarse(key_at(end - 1)));
        let mut g = Group { klo: khi, khi, ..Group::default() };
        let mut s = end;
        while s > 0 && self.coarse(key_at(s - 1)) == c {
            s -= 1;
            g.klo = key_at(s);
            let size = self.staging[s] as u32;
            if size == 0 {
                g.neg += 1;
            } else {
                g.pos += 1;
                g.weight += 1.0 / f64::from(size);
            }
        }
        (g, s)
    }

    /// Merges the staged samples into the groups, then coarsens until within capacity.
    pub fn flush(&mut self) {
        if self.staging.is_empty() {
            return;
        }
        self.staging.sort_unstable();
        let mut runs = 0usize;
        let mut last = None;
        for &e in &self.staging {
            let c = self.coarse((e >> 32) as u32);
            if last != Some(c) {
                runs += 1;
                last = Some(c);
            }
        }
        let old = self.groups.len();
        self.groups.reserve_exact(runs);
        self.groups.resize(old + runs, Group::default());
        // Merge from the back: `w - i` never drops below the number of runs left, so no unread
        // group is overwritten.
        let (mut i, mut w, mut j) = (old, old + runs, self.staging.len());
        while j > 0 {
            let (mut g, s) = self.run_before(j);
            let c = self.coarse(g.klo);
            while i > 0 && self.coarse(self.groups[i - 1].klo) > c {
                w -= 1;
                self.groups[w] = self.groups[i - 1];
                i -= 1;
            }
            if i > 0 && self.coarse(self.groups[i - 1].klo) == c {
                g.absorb(&self.groups[i - 1]);
                i -= 1;
            }
            w -= 1;
            self.groups[w] = g;
            j = s;
        }
        if w > i {
            let len = self.groups.len();
            self.groups.copy_within(w..len, i);
            self.groups.truncate(len - (w - i));
        }
        self.staging.clear();
        while self.groups.len() > self.capacity {
            self.coarsen();
        }
    }

    /// Drops one more key bit, merging groups that now share a coarse key.
    fn coarsen(&mut self) {
        self.shift += 1;
        let mut w = 0usize;
        for r in 0..self.groups.len() {
            let g = self.groups[r];
            if w > 0 && self.coarse(self.groups[w - 1].klo) == self.coarse(g.klo) {
                self.groups[w - 1].absorb(&g);
            } else {
                self.groups[w] = g;
                w += 1;
            }
        }
        self.groups.truncate(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_like_floats() {
        let vals = [f32::MIN, -3.5, -1e-30, -0.0, 0.0, 1e-45, 0.25, 1.0, 4.0, f32::MAX];
        for w in vals.windows(2) {
            assert!(key_of(w[0]) <= key_of(w[1]), "{} {}", w[0], w[1]);
        }
        assert_eq!(key_of(-0.0), key_of(0.0));
        for v in vals {
            let back = value_of(key_of(v));
            assert!(back == v, "{v} -> {back}");
        }
    }

    #[test]
    fn merge_matches_one_sort_and_coarsening_keeps_counts() {
        let mut a = ScoreTable::new(usize::MAX, 7);
        let mut b = ScoreTable::new(usize::MAX, 1 << 20);
        let mut c = ScoreTable::new(5, 3);
        let mut x = 12345u64;
        for i in 0..500u32 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((x >> 40) % 37) as f32 / 8.0 - 2.0;
            let size = if i % 3 == 0 { 1 + (i % 4) } else { 0 };
            a.push(v, size);
            b.push(v, size);
            c.push(v, size);
        }
        a.flush();
        b.flush();
        c.flush();
        assert_eq!(a.groups.len(), b.groups.len());
        for (x, y) in a.groups.iter().zip(&b.groups) {
            assert_eq!((x.klo, x.khi, x.neg, x.pos), (y.klo, y.khi, y.neg, y.pos));
            assert!((x.weight - y.weight).abs() < 1e-12);
        }
        assert_eq!(a.groups.len(), 37);
        assert!(c.groups.len() <= 5 && c.shift > 0 && c.groups.iter().any(Group::mixed));
        let total =
            |t: &ScoreTable| t.groups.iter().map(|g| (g.neg, g.pos)).fold((0, 0), |s, g| (s.0 + g.0, s.1 + g.1));
        assert_eq!(total(&c), total(&a));
        assert!(c.groups.windows(2).all(|w| w[0].khi < w[1].klo));
    }
}
