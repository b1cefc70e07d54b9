//! The rig without root: loopback workers, links shaped in user space by the sending
//! workers, compute not scaled.

use super::events::Targets;
use super::{spawn_worker, with_cleanup, Built, Host, RigDevice, Setup};
use crate::conn::Shaping;
use crate::coord::HilRun;
use anyhow::{bail, Result};

/// Workers on loopback ports.
pub(super) struct Loopback;

impl Host for Loopback {
    fn build(&self, setup: &Setup, run: &mut HilRun) -> Result<Built> {
        if std::env::var_os("CI").is_some() {
            bail!("dicesim emulate needs root for namespaces, tc and cgroups (CI is set, so the loopback fallback is not used)");
        }
        eprintln!(
            "dicesim emulate: not root: loopback workers, user-space shaping, compute not scaled"
        );
        run.mode = "emulate-loopback".into();
        let pf = &setup.prep.scenario.prep.platform;
        let mut targets = Targets::default();
        for &d in &setup.used {
            let log = setup.dir.join(format!("worker{d}.log"));
            let (child, addr) = spawn_worker(None, "127.0.0.1:0", Some(&setup.token), None, &log)?;
            targets.workers.insert(d, child.id());
            with_cleanup(|c| c.workers.push(child));
            run.workers.insert(pf.devices[d].name.clone(), addr);
        }
        // the route's latency and bottleneck bandwidth, both applied by the sender
        setup.shape_routes(run, |r| Shaping {
            delay_us: (r.latency_ns / 1000) as u32,
            rate_bps: (r.bottleneck * 8e9) as u64,
        });
        let devices = (setup.used.iter())
            .map(|&d| RigDevice {
                device: d,
                cpu: None,
                cpus: Vec::new(),
                pace: 1.0,
                netns: None,
            })
            .collect();
        Ok(Built {
            host_gflops: None,
            dilation: 1.0,
            devices,
            coord_ns: None,
            targets,
        })
    }
}
