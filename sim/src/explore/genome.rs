//! The search space: a mapping as contiguous segments of the topological layer order, each on
//! one unit ([`Genome`]), and the space of such encodings for a prepared scenario ([`Space`]).

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
    /// Allowed platform units.
    pub units: Vec<usize>,
    /// Most segments.
    pub max_segments: usize,
    /// Clean cut points (few crossing tensors), ascending.
    pub clean_cuts: Vec<u32>,
}

impl Space {
    /// The space of `prep` over `units`.
    pub fn new(prep: &PreparedScenario, units: Vec<usize>) -> Space {
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
        Space {
            layers: nl,
            max_segments: units.len().min(nl.max(1)),
            units,
            clean_cuts: clean,
        }
    }

    /// Number of mappings in the space (saturating).
    pub fn size(&self) -> u128 {
        let u = self.units.len() as u128;
        if self.layers == 0 || u == 0 {
            return 0;
        }
        let mut total: u128 = 0;
        let mut binom: u128 = 1; // C(L-1, k-1)
        let mut pow: u128 = u; // U (U-1)^(k-1)
        for k in 1..=self.max_segments {
            total = total.saturating_add(binom.saturating_mul(pow));
            let n = (self.layers - 1) as u128;
            let j = (k - 1) as u128;
            if j >= n {
                break;
            }
            binom = binom.saturating_mul(n - j) / (j + 1);
            pow = pow.saturating_mul(u - 1);
        }
        total
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
}
