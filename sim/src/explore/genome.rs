//! The search space: a mapping as contiguous segments of the topological layer order, each on
//! one unit ([`Genome`]), and the space of such encodings for a prepared scenario ([`Space`]).

use super::cores::Family;
use crate::prepared::PreparedScenario;

/// One encoding: cut positions and a unit per segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Genome {
    /// Cut positions (a cut at `c` starts a segment at layer `c`), strictly ascending, in
    /// `1..L`.
    pub cuts: Vec<u32>,
    /// Platform unit index per segment (`cuts.len() + 1` of them).
    pub units: Vec<u16>,
}

impl Genome {
    /// The encoding of an assignment (maximal runs of one unit).
    pub fn from_assignment(assign: &[usize]) -> Genome {
        let mut g = Genome {
            cuts: Vec::new(),
            units: Vec::new(),
        };
        for (l, &u) in assign.iter().enumerate() {
            if g.units.last() != Some(&(u as u16)) {
                if l > 0 {
                    g.cuts.push(l as u32);
                }
                g.units.push(u as u16);
            }
        }
        g
    }

    /// Layers `(start, end)` of segment `s` in a model of `layers` layers.
    pub(crate) fn bounds(&self, s: usize, layers: usize) -> (usize, usize) {
        let start = if s == 0 { 0 } else { self.cuts[s - 1] as usize };
        let end = self.cuts.get(s).map_or(layers, |&c| c as usize);
        (start, end)
    }

    /// Platform unit per layer.
    pub fn assignment(&self, layers: usize) -> Vec<usize> {
        let mut a = Vec::with_capacity(layers);
        for (s, &u) in self.units.iter().enumerate() {
            let end = self.cuts.get(s).map_or(layers, |&c| c as usize);
            a.resize(end, u as usize);
        }
        a
    }

    /// Merges equal neighbours and drops duplicate or out-of-range cuts.
    pub(crate) fn canonical(mut self, layers: usize) -> Genome {
        let mut cuts = Vec::with_capacity(self.cuts.len());
        let mut units = Vec::with_capacity(self.units.len());
        units.push(self.units[0]);
        for (i, &c) in self.cuts.iter().enumerate() {
            let u = self.units[i + 1];
            if c == 0 || c as usize >= layers || cuts.last() == Some(&c) {
                // a cut that does not start a segment: the later unit wins the segment
                *units.last_mut().expect("non-empty") = u;
                continue;
            }
            if *units.last().expect("non-empty") == u {
                continue;
            }
            cuts.push(c);
            units.push(u);
        }
        // merging may have made new equal neighbours
        self.cuts = cuts;
        self.units = units;
        let a = self.assignment(layers);
        Genome::from_assignment(&a)
    }
}

/// The encoding space of a prepared scenario.
#[derive(Debug, Clone)]
pub struct Space {
    /// Layers.
    pub layers: usize,
    /// Allowed platform units (core sets included).
    pub units: Vec<usize>,
    /// The units that are not a core set of a CPU of the space (partitioning and placement
    /// draw among these; all of `units` without core sets).
    pub whole: Vec<usize>,
    /// The CPUs whose core sets are in the space (empty without core sets).
    pub families: Vec<Family>,
    /// Most segments.
    pub max_segments: usize,
    /// Clean cut points (few crossing tensors), ascending.
    pub clean_cuts: Vec<u32>,
}

impl Space {
    /// The space of `prep` over `units`, each a unit of its own (no core allocation).
    pub fn new(prep: &PreparedScenario, units: Vec<usize>) -> Space {
        let nl = prep.graph.layers.len();
        Space {
            layers: nl,
            max_segments: units.len().min(nl.max(1)),
            whole: units.clone(),
            families: Vec::new(),
            units,
            clean_cuts: clean_cuts(prep),
        }
    }

    /// The space of `prep` over `units` with core allocation: a core set of a CPU whose
    /// whole unit is in `units` belongs to that CPU's [`Family`]. A CPU adds as many
    /// segments to the limit as it can run at once beyond its first.
    pub fn with_core_sets(prep: &PreparedScenario, units: Vec<usize>) -> Space {
        let p = &prep.platform;
        let families: Vec<Family> = (units.iter())
            .filter_map(|&u| Family::of(p, u, &units))
            .collect();
        let whole: Vec<usize> = (units.iter().copied())
            .filter(|&u| !families.iter().any(|f| f.sets.contains(&(u as u16))))
            .collect();
        let stages = whole.len() + families.iter().map(|f| f.stages - 1).sum::<usize>();
        let nl = prep.graph.layers.len();
        Space {
            layers: nl,
            max_segments: stages.min(nl.max(1)),
            whole,
            families,
            units,
            clean_cuts: clean_cuts(prep),
        }
    }

    /// Whether the space allocates cores.
    pub fn has_core_sets(&self) -> bool {
        !self.families.is_empty()
    }

    /// The family of the CPU unit `u` runs on, if its core sets are in the space.
    pub(crate) fn family(&self, u: u16) -> Option<&Family> {
        self.families.iter().find(|f| f.contains(u))
    }

    /// The units a segment on `u` may move to: the whole units, then the core sets of
    /// `u`'s CPU.
    pub(crate) fn moves_from(&self, u: u16) -> Vec<usize> {
        let mut v = self.whole.clone();
        if let Some(f) = self.family(u) {
            v.extend(f.sets.iter().map(|&s| s as usize));
        }
        v
    }
}

/// The clean cut points of `prep`'s layer order: those with the fewest tensors crossing
/// them (the minimum, or one more when that leaves fewer than 4).
fn clean_cuts(prep: &PreparedScenario) -> Vec<u32> {
    let nl = prep.graph.layers.len();
    // tensors crossing the cut before layer i
    let mut cross = vec![0u32; nl + 1];
    for t in prep.graph.tensors.values() {
        if let (Some(p), Some(&last)) = (t.producer, t.consumers.iter().max()) {
            for c in cross.iter_mut().take(last + 1).skip(p + 1) {
                *c += 1;
            }
        }
    }
    let inner = || (1..nl).map(|i| cross[i]);
    let min = inner().min().unwrap_or(0);
    let mut clean: Vec<u32> = (1..nl as u32)
        .filter(|&i| cross[i as usize] <= min)
        .collect();
    if clean.len() < 4 {
        clean = (1..nl as u32)
            .filter(|&i| cross[i as usize] <= min + 1)
            .collect();
    }
    clean
}

impl Space {
    /// Number of mappings in the space: exact while it fits in 128 bits, else its order of
    /// magnitude.
    pub fn size(&self) -> SpaceSize {
        let u = self.units.len();
        if self.layers == 0 || u == 0 {
            return SpaceSize {
                exact: Some(0),
                log10: f64::NEG_INFINITY,
            };
        }
        let n = self.layers - 1;
        let mut exact: Option<u128> = Some(0);
        let mut binom: Option<u128> = Some(1); // C(L-1, k-1)
        let mut pow: Option<u128> = Some(u as u128); // U (U-1)^(k-1)
        let mut log_terms = Vec::new();
        let (mut log_binom, mut log_pow) = (0.0f64, (u as f64).log10());
        for k in 1..=self.max_segments {
            let term = binom.zip(pow).and_then(|(b, p)| b.checked_mul(p));
            exact = exact.zip(term).and_then(|(t, x)| t.checked_add(x));
            log_terms.push(log_binom + log_pow);
            let j = k - 1;
            if j >= n {
                break;
            }
            // C(n, j+1) = C(n, j) (n - j) / (j + 1): exact in integers
            binom = binom
                .and_then(|b| b.checked_mul((n - j) as u128))
                .map(|b| b / (j as u128 + 1));
            pow = pow.and_then(|p| p.checked_mul(u as u128 - 1));
            log_binom += ((n - j) as f64 / (j + 1) as f64).log10();
            log_pow += ((u - 1) as f64).log10();
        }
        SpaceSize {
            exact,
            log10: log10_sum(&log_terms),
        }
    }
}

/// log10 of a sum of terms given by their log10.
fn log10_sum(logs: &[f64]) -> f64 {
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + logs
        .iter()
        .map(|l| 10f64.powf(l - max))
        .sum::<f64>()
        .log10()
}

/// The number of mappings in a space: exact when it fits in 128 bits, always as log10.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpaceSize {
    /// The exact count, when it fits in a `u128`.
    pub exact: Option<u128>,
    /// Its decimal logarithm.
    pub log10: f64,
}

impl SpaceSize {
    /// Whether the space has at most `n` mappings.
    pub fn at_most(&self, n: u64) -> bool {
        self.exact.is_some_and(|e| e <= n as u128)
    }

    /// The count when it fits in 64 bits.
    pub fn as_u64(&self) -> Option<u64> {
        self.exact.and_then(|e| u64::try_from(e).ok())
    }
}

/// The exact count, or `about 10^x` when it does not fit in 128 bits.
impl std::fmt::Display for SpaceSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.exact {
            Some(e) => write!(f, "{e}"),
            None => write!(f, "about 10^{:.1}", self.log10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genome_round_trip_and_canonical() {
        let a = vec![2, 2, 0, 0, 0, 2, 1];
        let g = Genome::from_assignment(&a);
        assert_eq!(g.cuts, vec![2, 5, 6]);
        assert_eq!(g.assignment(7), a);
        let g2 = Genome {
            cuts: vec![2, 2, 4],
            units: vec![1, 3, 1, 1],
        }
        .canonical(7);
        assert_eq!(g2.assignment(7), vec![1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(g2.cuts, Vec::<u32>::new());
    }

    fn space(layers: usize, units: usize) -> Space {
        Space {
            layers,
            units: (0..units).collect(),
            whole: (0..units).collect(),
            families: Vec::new(),
            max_segments: units.min(layers),
            clean_cuts: Vec::new(),
        }
    }

    #[test]
    fn space_size_is_exact_or_a_power_of_ten() {
        // 3 layers, 2 units: 2 single-unit + 2 cuts x 2 orders + 0 (3 segments need 3 units)
        let s = space(3, 2).size();
        assert_eq!(s.exact, Some(6));
        assert!((s.log10 - 6f64.log10()).abs() < 1e-12);
        // 4 layers, 3 units: 3 + C(3,1) 3*2 + C(3,2) 3*2*2 = 3 + 18 + 36 = 57
        assert_eq!(space(4, 3).size().exact, Some(57));
        // 200 layers, 32 units overflows 128 bits: the order of magnitude stays
        let big = space(200, 32).size();
        assert_eq!(big.exact, None);
        assert!(big.log10 > 38.5, "{}", big.log10);
        assert!(big.to_string().starts_with("about 10^"));
    }
}
