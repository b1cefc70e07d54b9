//! Which host CPUs each emulated device gets, and the time dilation that keeps every
//! device at its paced rate (the rule is stated in the parent module's docs).

use dicesim_plan::coreset::CoreSet;
use std::collections::BTreeMap;

/// Worst-case summed load allowed on one host CPU, as a fraction of it: the rest is left
/// to the workers' I/O threads, the coordinator and the kernel's traffic shaping.
pub const LOAD_BOUND: f64 = 0.9;

/// One partition's demand on the rig.
#[derive(Debug, Clone, Copy)]
pub struct Demand {
    /// Its device.
    pub device: usize,
    /// The device's cores it runs on (empty: a GPU unit, counted as core 0).
    pub cores: CoreSet,
    /// Host cores it needs to compute at its platform speed (one engine thread).
    pub share: f64,
}

impl Demand {
    /// Its cores, a GPU unit's as core 0.
    fn cores(&self) -> CoreSet {
        if self.cores.count() == 0 {
            CoreSet(1)
        } else {
            self.cores
        }
    }
}

/// The rig's layout: host CPUs per device and the time dilation.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Device -> its host CPUs (its core `i` runs on `cpus[i % len]`).
    pub cpus: BTreeMap<usize, Vec<usize>>,
    /// Time dilation D >= 1.
    pub dilation: f64,
    /// Whether every device has host CPUs of its own.
    pub dedicated: bool,
}

/// Lays `parts` out on `host` CPUs: dedicated CPUs per device when there are enough,
/// otherwise as few devices per CPU as the CPUs allow; then the smallest dilation that
/// keeps every CPU's worst-case load within [`LOAD_BOUND`].
pub fn layout(host: &[usize], parts: &[Demand]) -> Layout {
    let need = needs(parts);
    let total: usize = need.values().sum();
    let (cpus, dedicated) = if total <= host.len() {
        (blocks(host, &need), true)
    } else if need.len() <= host.len() {
        (blocks(host, &spread(host.len(), &need)), true)
    } else {
        (shared(host, parts, &need), false)
    };
    let dilation = dilation(&cpus, parts);
    Layout {
        cpus,
        dilation,
        dedicated,
    }
}

/// Device -> number of distinct cores its partitions use (at least 1).
fn needs(parts: &[Demand]) -> BTreeMap<usize, usize> {
    let mut used: BTreeMap<usize, CoreSet> = BTreeMap::new();
    for p in parts {
        let u = used.entry(p.device).or_insert(CoreSet(0));
        *u = CoreSet(u.0 | p.cores().0);
    }
    (used.into_iter())
        .map(|(d, c)| (d, (c.count() as usize).max(1)))
        .collect()
}

/// Consecutive host CPUs, `count[d]` for each device in order.
fn blocks(host: &[usize], count: &BTreeMap<usize, usize>) -> BTreeMap<usize, Vec<usize>> {
    let mut next = 0;
    (count.iter())
        .map(|(&d, &n)| {
            let v = host[next..next + n].to_vec();
            next += n;
            (d, v)
        })
        .collect()
}

/// `h` CPUs over devices that need more in all: one each, then one at a time to the
/// device missing the most (the lowest index on ties).
fn spread(h: usize, need: &BTreeMap<usize, usize>) -> BTreeMap<usize, usize> {
    let mut have: BTreeMap<usize, usize> = need.keys().map(|&d| (d, 1)).collect();
    for _ in need.len()..h {
        let d = (need.iter())
            .max_by_key(|(&d, &n)| (n - have[&d], std::cmp::Reverse(d)))
            .map(|(&d, _)| d)
            .expect("at least one device");
        *have.get_mut(&d).expect("listed") += 1;
    }
    have
}

/// More devices than CPUs: one CPU each, the devices with the largest shares first, each
/// onto the CPU where it raises the worst-case cost ([`cost`]) the least.
fn shared(
    host: &[usize],
    parts: &[Demand],
    need: &BTreeMap<usize, usize>,
) -> BTreeMap<usize, Vec<usize>> {
    let top = |d: usize| {
        (parts.iter().filter(|p| p.device == d))
            .map(|p| p.share)
            .fold(0.0, f64::max)
    };
    let mut order: Vec<usize> = need.keys().copied().collect();
    order.sort_by(|a, b| top(*b).total_cmp(&top(*a)).then(a.cmp(b)));
    let mut on: Vec<Vec<usize>> = vec![Vec::new(); host.len()];
    for d in order {
        let with = |j: usize| {
            let mut devs = on[j].clone();
            devs.push(d);
            let ps: Vec<Demand> = (parts.iter())
                .filter(|p| devs.contains(&p.device))
                .copied()
                .collect();
            cost(&ps)
        };
        let j = (0..host.len())
            .min_by(|&a, &b| with(a).total_cmp(&with(b)).then(a.cmp(&b)))
            .expect("at least one CPU");
        on[j].push(d);
    }
    (on.iter().enumerate())
        .flat_map(|(j, ds)| ds.iter().map(move |&d| (d, vec![host[j]])))
        .collect()
}

/// Worst-case cost of partitions that share one host CPU: when all of them compute at once
/// the CPU is shared equally (processor sharing), so each gets 1/m of it, m the number of
/// partitions that can run at once; the cost is m x the largest share. Partitions of one
/// device on the same cores take turns, so they count once.
fn cost(ps: &[Demand]) -> f64 {
    let mut groups: Vec<(usize, CoreSet)> = ps.iter().map(|p| (p.device, p.cores())).collect();
    groups.sort();
    groups.dedup();
    let top = ps.iter().map(|p| p.share).fold(0.0, f64::max);
    groups.len() as f64 * top
}

/// D = max(1, largest CPU cost / [`LOAD_BOUND`]), to 6 significant digits, rounded up.
fn dilation(cpus: &BTreeMap<usize, Vec<usize>>, parts: &[Demand]) -> f64 {
    let mut per_cpu: BTreeMap<usize, Vec<Demand>> = BTreeMap::new();
    for p in parts {
        let Some(map) = cpus.get(&p.device) else {
            continue;
        };
        let mut mine: Vec<usize> = (p.cores().cores().iter())
            .map(|&i| map[i as usize % map.len()])
            .collect();
        mine.sort_unstable();
        mine.dedup();
        for j in mine {
            per_cpu.entry(j).or_default().push(*p);
        }
    }
    let worst = per_cpu.values().map(|ps| cost(ps)).fold(0.0, f64::max);
    round_up6((worst / LOAD_BOUND).max(1.0))
}

/// `x` to 6 significant digits, never below `x` (so that D / share stays >= 1).
fn round_up6(x: f64) -> f64 {
    let r = dicesim_sim::report::r6(x);
    if r >= x {
        r
    } else {
        let scale = 10f64.powi(5 - x.log10().floor() as i32);
        (x * scale).ceil() / scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(device: usize, share: f64) -> Demand {
        Demand {
            device,
            cores: CoreSet(1),
            share,
        }
    }

    #[test]
    fn enough_cpus_give_each_device_its_own() {
        let l = layout(
            &[0, 1, 2, 3],
            &[whole(0, 0.5), whole(1, 2.0), whole(2, 0.3)],
        );
        assert!(l.dedicated);
        assert_eq!(l.cpus[&0], vec![0]);
        assert_eq!(l.cpus[&1], vec![1]);
        assert_eq!(l.cpus[&2], vec![2]);
        // alone on its CPU, the fastest device sets D: 2.0 / 0.9
        assert!((l.dilation - 2.0 / LOAD_BOUND).abs() < 1e-5);
        assert!(l.dilation >= 2.0 / LOAD_BOUND);
    }

    #[test]
    fn core_sets_get_one_cpu_per_core() {
        let two = |c| Demand {
            device: 0,
            cores: CoreSet(c),
            share: 0.5,
        };
        let l = layout(&[0, 1, 2], &[two(1), two(2), whole(1, 0.2)]);
        assert_eq!(l.cpus[&0], vec![0, 1]);
        assert_eq!(l.cpus[&1], vec![2]);
        assert_eq!(l.dilation, 1.0);
        // one CPU for the 2-core device: its two partitions share it
        let l = layout(&[0, 1], &[two(1), two(2), whole(1, 0.2)]);
        assert_eq!((l.cpus[&0].clone(), l.cpus[&1].clone()), (vec![0], vec![1]));
        assert!((l.dilation - 1.0 / LOAD_BOUND).abs() < 1e-5);
    }

    #[test]
    fn more_devices_than_cpus_pair_the_smallest() {
        // the validation rig: 3 devices on 2 CPUs
        let l = layout(&[0, 1], &[whole(0, 0.6), whole(1, 0.9), whole(2, 0.45)]);
        assert!(!l.dedicated);
        assert_eq!(l.cpus[&1], vec![0]);
        assert_eq!(l.cpus[&0], vec![1]);
        assert_eq!(l.cpus[&2], vec![1]);
        // d0 and d2 computing at once get half of CPU 1 each: D = 2 x 0.6 / 0.9
        assert!((l.dilation - 1.2 / LOAD_BOUND).abs() < 1e-5);
    }

    #[test]
    fn partitions_on_the_same_cores_count_once() {
        let l = layout(&[0], &[whole(0, 0.45), whole(0, 0.45)]);
        assert_eq!(l.dilation, 1.0);
        let l = layout(&[0], &[whole(0, 0.45), whole(1, 0.45)]);
        assert!(l.dilation >= 0.9 / LOAD_BOUND);
    }

    #[test]
    fn spread_favours_the_neediest() {
        let need = BTreeMap::from([(0, 4), (1, 1), (2, 2)]);
        let have = spread(4, &need);
        assert_eq!(have, BTreeMap::from([(0, 2), (1, 1), (2, 1)]));
    }
}
