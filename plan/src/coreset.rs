//! Unit references with an optional core set: `"dev.unit"` (the whole unit), `"dev.unit[i]"`,
//! `"dev.unit[i-j]"`, `"dev.unit[i,j,k]"` and mixes such as `"dev.unit[0-1,3]"`.
//!
//! The simulator, the search and real execution all read core sets through [`UnitRef`]: a
//! partition on `rpi4.cpu[0-1]` runs on cores 0 and 1 of `rpi4.cpu`, with two threads.

use std::fmt;

/// The most cores a core set can name (cores `0..MAX_CORES`).
pub const MAX_CORES: u32 = 64;

/// A set of cores of one unit, as a bit mask (bit `i`: core `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreSet(pub u64);

impl CoreSet {
    /// Cores `0..n` (every core of an `n`-core unit).
    pub fn first(n: u32) -> CoreSet {
        let n = n.min(MAX_CORES);
        CoreSet(if n == MAX_CORES {
            u64::MAX
        } else {
            (1u64 << n) - 1
        })
    }

    /// Cores `from..from + n`.
    pub fn block(from: u32, n: u32) -> CoreSet {
        CoreSet(CoreSet::first(n).0 << from.min(MAX_CORES - 1))
    }

    /// How many cores.
    pub fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// Whether the two sets share a core.
    pub fn overlaps(self, other: CoreSet) -> bool {
        self.0 & other.0 != 0
    }

    /// The core indices, ascending.
    pub fn cores(self) -> Vec<u32> {
        (0..MAX_CORES).filter(|&i| self.0 >> i & 1 == 1).collect()
    }

    /// The highest core index + 1 (0 for the empty set).
    pub fn span(self) -> u32 {
        MAX_CORES - self.0.leading_zeros()
    }
}

impl fmt::Display for CoreSet {
    /// Runs of consecutive cores as `i-j`, separated by commas: `0-1,3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cores = self.cores();
        let mut i = 0;
        let mut first = true;
        while i < cores.len() {
            let mut j = i;
            while j + 1 < cores.len() && cores[j + 1] == cores[j] + 1 {
                j += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if i == j {
                write!(f, "{}", cores[i])?;
            } else {
                write!(f, "{}-{}", cores[i], cores[j])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// A unit name with an optional core set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRef {
    /// The unit's full name, `"<device>.<unit>"`.
    pub unit: String,
    /// The cores named in brackets; `None`: the whole unit.
    pub cores: Option<CoreSet>,
}

impl UnitRef {
    /// Parses `"dev.unit"` or `"dev.unit[<cores>]"`; the error says what was expected.
    pub fn parse(name: &str) -> Result<UnitRef, String> {
        let Some(open) = name.find('[') else {
            return Ok(UnitRef {
                unit: name.to_string(),
                cores: None,
            });
        };
        let Some(inner) = name[open + 1..].strip_suffix(']') else {
            return Err(format!(
                "unit `{name}`: a core set ends with `]` (expected e.g. `dev.cpu[0-1]`)"
            ));
        };
        let cores = parse_cores(inner).map_err(|e| format!("unit `{name}`: {e}"))?;
        Ok(UnitRef {
            unit: name[..open].to_string(),
            cores: Some(cores),
        })
    }

    /// The name as written canonically: `dev.unit` or `dev.unit[0-1,3]`.
    pub fn name(&self) -> String {
        match self.cores {
            None => self.unit.clone(),
            Some(c) => format!("{}[{c}]", self.unit),
        }
    }
}

/// `i`, `i-j`, and comma-separated lists of those.
fn parse_cores(text: &str) -> Result<CoreSet, String> {
    let mut mask = 0u64;
    for item in text.split(',') {
        let item = item.trim();
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (core_index(a)?, core_index(b)?),
            None => (core_index(item)?, core_index(item)?),
        };
        if b < a {
            return Err(format!("core range `{item}` runs backwards"));
        }
        for i in a..=b {
            mask |= 1 << i;
        }
    }
    Ok(CoreSet(mask))
}

fn core_index(text: &str) -> Result<u32, String> {
    let text = text.trim();
    match text.parse::<u32>() {
        Ok(i) if i < MAX_CORES => Ok(i),
        Ok(i) => Err(format!(
            "core {i} is out of range (at most {})",
            MAX_CORES - 1
        )),
        Err(_) => Err(format!(
            "`{text}` is not a core index (expected `i`, `i-j` or `i,j,k`)"
        )),
    }
}

/// AutoDiCE's per-core resource names: its `lenovo_cpu0` (read by the mapping reader as
/// unit `lenovo.cpu0`) means core 0 of unit `lenovo.cpu` when the platform has no unit named
/// `cpu0`. Returns `("lenovo.cpu", 0)` for `"lenovo.cpu0"`, `None` when the unit name does not
/// end in digits after a letter.
pub fn trailing_core(full_name: &str) -> Option<(&str, u32)> {
    let (_, unit) = full_name.split_once('.')?;
    let digits = unit.len() - unit.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits == unit.len() {
        return None;
    }
    let (base, core) = full_name.split_at(full_name.len() - digits);
    let core: u32 = core.parse().ok().filter(|&c| c < MAX_CORES)?;
    Some((base, core))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_units_and_core_sets() {
        assert_eq!(UnitRef::parse("d.cpu").unwrap().cores, None);
        let r = UnitRef::parse("d.cpu[0-1,3]").unwrap();
        assert_eq!(r.unit, "d.cpu");
        assert_eq!(r.cores, Some(CoreSet(0b1011)));
        assert_eq!(r.name(), "d.cpu[0-1,3]");
        assert_eq!(UnitRef::parse("d.cpu[2]").unwrap().cores, Some(CoreSet(4)));
        assert_eq!(
            UnitRef::parse("d.cpu[ 0 , 2 ]").unwrap().name(),
            "d.cpu[0,2]"
        );
    }

    #[test]
    fn bad_core_sets_say_what_was_expected() {
        for bad in [
            "d.cpu[",
            "d.cpu[]",
            "d.cpu[a]",
            "d.cpu[3-1]",
            "d.cpu[64]",
            "d.cpu[1]x",
        ] {
            let e = UnitRef::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn core_set_helpers() {
        assert_eq!(CoreSet::first(4), CoreSet(15));
        assert_eq!(CoreSet::first(64), CoreSet(u64::MAX));
        assert_eq!(CoreSet::block(2, 2), CoreSet(12));
        assert!(CoreSet(3).overlaps(CoreSet(2)));
        assert!(!CoreSet(3).overlaps(CoreSet(12)));
        assert_eq!(CoreSet(12).span(), 4);
        assert_eq!(CoreSet(12).cores(), vec![2, 3]);
    }

    #[test]
    fn autodice_names() {
        assert_eq!(trailing_core("lenovo.cpu0"), Some(("lenovo.cpu", 0)));
        assert_eq!(trailing_core("my_board.cpu12"), Some(("my_board.cpu", 12)));
        assert_eq!(trailing_core("lenovo.cpu"), None);
        assert_eq!(trailing_core("lenovo.0"), None);
        assert_eq!(trailing_core("lenovo_cpu0"), None);
    }
}
