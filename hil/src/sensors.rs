//! Measurements a worker takes of its own board: peak memory and energy sensors.
//!
//! Energy is read only from real sensors: Linux powercap RAPL
//! (`/sys/class/powercap/intel-rapl:<n>/energy_uj`, package domains) and the Jetson INA3221
//! power monitor (`/sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*/in*_input` and
//! `curr*_input`, mV and mA per channel, sampled every 20 ms by a thread and integrated).
//! Where neither exists the energy is `None` and reports print `null`; it is never
//! estimated here.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Peak resident set size of this process (VmHWM) [KiB]; 0 if unknown.
pub fn peak_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// RAPL package domains that can be read here.
fn rapl_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/sys/class/powercap")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // package domains only (intel-rapl:0, not the sub-domains intel-rapl:0:0)
            n.starts_with("intel-rapl:") && n.matches(':').count() == 1
        })
        .map(|p| p.join("energy_uj"))
        .filter(|p| std::fs::read_to_string(p).is_ok())
        .collect();
    v.sort();
    v
}

fn read_u64(p: &PathBuf) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// An energy counter started at creation.
pub struct EnergyMeter {
    id: String,
    rapl: Vec<(PathBuf, u64, u64)>, // file, start, max_energy_range_uj
    ina: Option<Arc<AtomicU64>>,    // integrated energy [uJ]; the sampler stops with it
}

/// INA3221 channels as (voltage file [mV], current file [mA]).
fn ina3221_channels() -> Vec<(PathBuf, PathBuf)> {
    let mut v = Vec::new();
    for drv in std::fs::read_dir("/sys/bus/i2c/drivers")
        .into_iter()
        .flatten()
        .flatten()
    {
        if !drv.file_name().to_string_lossy().starts_with("ina3221") {
            continue;
        }
        for dev in std::fs::read_dir(drv.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for hw in std::fs::read_dir(dev.path().join("hwmon"))
                .into_iter()
                .flatten()
                .flatten()
            {
                for ch in 1..=3 {
                    let u = hw.path().join(format!("in{ch}_input"));
                    let i = hw.path().join(format!("curr{ch}_input"));
                    if read_u64(&u).is_some() && read_u64(&i).is_some() {
                        v.push((u, i));
                    }
                }
            }
        }
    }
    v
}

fn start_ina3221(chans: Vec<(PathBuf, PathBuf)>) -> Arc<AtomicU64> {
    let acc = Arc::new(AtomicU64::new(0));
    let weak = Arc::downgrade(&acc);
    std::thread::spawn(move || {
        let dt = std::time::Duration::from_millis(20);
        let mut last = std::time::Instant::now();
        while let Some(a) = weak.upgrade() {
            std::thread::sleep(dt);
            let now = std::time::Instant::now();
            let mw: u64 = chans
                .iter()
                .filter_map(|(u, i)| Some(read_u64(u)? * read_u64(i)? / 1000))
                .sum();
            // mW x s = mJ; x1000 = uJ
            let uj = mw as f64 * now.duration_since(last).as_secs_f64() * 1000.0;
            a.fetch_add(uj as u64, Ordering::Relaxed);
            last = now;
        }
    });
    acc
}

impl EnergyMeter {
    /// Starts counting, if this board has a sensor.
    pub fn start() -> Option<EnergyMeter> {
        let files = rapl_files();
        if files.is_empty() {
            let chans = ina3221_channels();
            if chans.is_empty() {
                return None;
            }
            return Some(EnergyMeter {
                id: format!("{}:ina3221", host()),
                rapl: Vec::new(),
                ina: Some(start_ina3221(chans)),
            });
        }
        let rapl = files
            .into_iter()
            .filter_map(|f| {
                let v = read_u64(&f)?;
                let max = read_u64(&f.with_file_name("max_energy_range_uj")).unwrap_or(u64::MAX);
                Some((f, v, max))
            })
            .collect::<Vec<_>>();
        if rapl.is_empty() {
            return None;
        }
        Some(EnergyMeter {
            id: format!("{}:rapl", host()),
            rapl,
            ina: None,
        })
    }

    /// Sensor id (`host:kind`): two workers with the same id share the sensor.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Energy since the start [uJ] (counter wrap handled).
    pub fn used_uj(&self) -> u64 {
        if let Some(a) = &self.ina {
            return a.load(Ordering::Relaxed);
        }
        self.rapl
            .iter()
            .map(|(f, s, max)| {
                let now = read_u64(f).unwrap_or(*s);
                if now >= *s {
                    now - s
                } else {
                    max.saturating_sub(*s) + now
                }
            })
            .sum()
    }
}
