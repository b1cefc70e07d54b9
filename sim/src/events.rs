//! Platform events of a scenario (`[[event]]`, `[[trace]]`) and how a run adapts to them
//! (`[adapt]`): the file model, the checked types, and the re-planning function that both
//! the simulator (`dicesim run`) and the coordinator (`dicesim hil`, `emulate`) call, so that
//! both choose the same new plan for the same state of the platform. Format and semantics:
//! `docs/events.md`.

use std::collections::BTreeSet;
use std::path::Path;

use dicesim_plan::mapping::Mapping;
use serde::Deserialize;

use crate::error::SimError;
use crate::files::{relative, ScenarioFile};
use crate::network::Network;
use crate::platform::Platform;
use crate::prepared::PreparedScenario;
use crate::scenario::Scenario;
use crate::strategy;

/// How long the coordinator takes to notice a lost worker [ms]: a connection that hears
/// nothing (not even a heartbeat) for this long is dropped (hil's `proto::IDLE_TIMEOUT_MS`).
/// A killed process closes its sockets and is noticed sooner; a device that loses power is
/// not, so the simulator assumes the worst case.
pub const LOSS_DETECT_MS: f64 = 900.0;

/// Frames whose transfers over a slowed-down link the coordinator times before it calls the
/// link slow: detection takes this many of the plan's frame periods at the new rate.
pub const SLOWDOWN_DETECT_FRAMES: u32 = 3;

/// Planning time of the `pipeedge` strategy [ms] (its dynamic programme takes milliseconds
/// on the example platforms; a fixed figure keeps reports identical on every machine).
pub const PLAN_MS_PIPEEDGE: f64 = 10.0;

/// Planning time of `explore` per evaluation [ms]: one simulated evaluation of a mapping
/// (`dicesim explore` measures 20,000-35,000 evaluations/s for resnet18 to resnet50 on a
/// 2-core host; this allows a slower coordinator host).
pub const PLAN_MS_PER_EVALUATION: f64 = 0.1;

/// `[[event]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTable {
    /// `at_ms`: when the event happens, from the start of the run.
    pub at_ms: f64,
    /// `device`: the device that goes down or comes up.
    pub device: Option<String>,
    /// `action` of a device event.
    pub action: Option<DeviceAction>,
    /// `link`: the link whose rate changes.
    pub link: Option<String>,
    /// `bandwidth_mbps`: the link's rate from then on.
    pub bandwidth_mbps: Option<f64>,
}

/// `action` of a device event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceAction {
    /// The device stops (its worker is killed, it loses power).
    Down,
    /// The device is back.
    Up,
}

/// `[[trace]]` as written: a link's rate over time from a CSV file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceTable {
    /// `link`: the link whose rate the trace gives.
    pub link: String,
    /// `file`: CSV with the header `time_ms,bandwidth_mbps`, relative to the scenario.
    pub file: String,
}

/// `[adapt]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptTable {
    /// `on_device_loss`.
    pub on_device_loss: Option<OnDeviceLoss>,
    /// `on_slowdown`.
    pub on_slowdown: Option<OnSlowdown>,
    /// `strategy` of the re-plan.
    pub strategy: Option<ReplanStrategy>,
    /// `budget`: evaluations of `explore`.
    pub budget: Option<u64>,
    /// `slowdown_factor`.
    pub slowdown_factor: Option<f64>,
    /// `explore_latency`: the latency objective of `dicesim explore`.
    pub explore_latency: Option<ExploreLatency>,
}

/// The latency objective `dicesim explore` minimises for a scenario with events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExploreLatency {
    /// The plan's own latency, without events (as for any scenario).
    #[default]
    Plan,
    /// The p95 frame latency of the scenario's workload run with its events and `[adapt]`
    /// (a mapping that then loses frames is infeasible by the share it loses).
    EventsP95,
}

/// What a run does when a device it uses goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDeviceLoss {
    /// Plan again on what is left and re-run the frames in flight.
    Replan,
    /// Stop: the frames that did not complete fail (the behaviour before events existed).
    #[default]
    Fail,
}

/// What a run does when a link it uses runs slower than planned by the slowdown factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSlowdown {
    /// Plan again with the rates measured.
    Replan,
    /// Keep the plan.
    #[default]
    Ignore,
}

/// How a re-plan chooses the new mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplanStrategy {
    /// PipeEdge's dynamic programme over the units left.
    #[default]
    Pipeedge,
    /// The NSGA-II search with `budget` evaluations; the feasible mapping of highest
    /// throughput on its front.
    Explore,
}

impl ReplanStrategy {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ReplanStrategy::Pipeedge => "pipeedge",
            ReplanStrategy::Explore => "explore",
        }
    }
}

/// The checked `[adapt]` table (defaults filled in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adapt {
    /// On a lost device.
    pub on_device_loss: OnDeviceLoss,
    /// On a slow link.
    pub on_slowdown: OnSlowdown,
    /// How to re-plan.
    pub strategy: ReplanStrategy,
    /// Evaluations of `explore`.
    pub budget: u64,
    /// A link is slow when its rate is below its planned rate divided by this.
    pub slowdown_factor: f64,
    /// The latency objective of `explore`.
    pub explore_latency: ExploreLatency,
}

/// Default `budget` of an `explore` re-plan.
pub const DEFAULT_BUDGET: u64 = 200;

impl Default for Adapt {
    fn default() -> Self {
        Adapt {
            on_device_loss: OnDeviceLoss::Fail,
            on_slowdown: OnSlowdown::Ignore,
            strategy: ReplanStrategy::Pipeedge,
            budget: DEFAULT_BUDGET,
            slowdown_factor: 2.0,
            explore_latency: ExploreLatency::Plan,
        }
    }
}

/// One checked event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// When [ms from the start of the run].
    pub at_ms: f64,
    /// What happens.
    pub action: Action,
}

/// What an event does; devices and links are platform indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// The device stops.
    Down {
        /// Platform device index.
        device: usize,
    },
    /// The device is back (a later re-plan may use it again).
    Up {
        /// Platform device index.
        device: usize,
    },
    /// The link's rate becomes `mbps` (both directions).
    Bandwidth {
        /// Platform link index.
        link: usize,
        /// New rate [Mbit/s].
        mbps: f64,
    },
}

impl Event {
    /// The event in words, with the platform's names.
    pub fn describe(&self, p: &Platform) -> String {
        match self.action {
            Action::Down { device } => format!("device {} down", p.devices[device].name),
            Action::Up { device } => format!("device {} up", p.devices[device].name),
            Action::Bandwidth { link, mbps } => {
                format!("link {} at {mbps} Mbit/s", p.links[link].name)
            }
        }
    }
}

/// The platform as events have left it: devices down and each link's current rate.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformState {
    /// Devices down (platform indices).
    pub down: BTreeSet<usize>,
    /// Current rate of each link [Mbit/s], in platform order.
    pub bandwidth_mbps: Vec<f64>,
}

impl PlatformState {
    /// The platform as its file describes it: every device up, every link at its rate.
    pub fn initial(p: &Platform) -> Self {
        PlatformState {
            down: BTreeSet::new(),
            bandwidth_mbps: p.links.iter().map(|l| l.bandwidth_mbps).collect(),
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, a: &Action) {
        match *a {
            Action::Down { device } => {
                self.down.insert(device);
            }
            Action::Up { device } => {
                self.down.remove(&device);
            }
            Action::Bandwidth { link, mbps } => self.bandwidth_mbps[link] = mbps,
        }
    }

    /// `prep` with the links at their current rates (the network's capacities and routes'
    /// bottlenecks recomputed; layer times do not depend on links).
    pub fn prepared(&self, prep: &PreparedScenario) -> PreparedScenario {
        let mut p = prep.clone();
        for (l, &r) in p.platform.links.iter_mut().zip(&self.bandwidth_mbps) {
            l.bandwidth_mbps = r;
        }
        p.network = Network::new(&p.platform);
        p
    }
}

/// The checked events (`[[event]]`, then every `[[trace]]` line as an event, sorted by
/// time; equal times keep that order) and `[adapt]` of a scenario file at `path`.
pub fn check_file(
    path: &Path,
    file: &ScenarioFile,
    p: &Platform,
) -> Result<(Vec<Event>, Adapt), SimError> {
    let mut out = Vec::new();
    for (i, e) in file.event.iter().enumerate() {
        out.push(check_event(path, i, e, p)?);
    }
    for (i, t) in file.trace.iter().enumerate() {
        out.extend(read_trace(path, i, t, p)?);
    }
    out.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let adapt = check_adapt(path, file.adapt.clone().unwrap_or_default())?;
    Ok((out, adapt))
}

/// One `[[event]]`: a device with an action, or a link with a rate.
fn check_event(path: &Path, i: usize, e: &EventTable, p: &Platform) -> Result<Event, SimError> {
    let key = |k: &str| format!("event[{i}].{k}");
    let at_ms = check_time(path, &key("at_ms"), e.at_ms)?;
    let action = match (&e.device, e.action, &e.link, e.bandwidth_mbps) {
        (Some(d), Some(act), None, None) => {
            let device = device_index(path, &key("device"), d, p)?;
            match act {
                DeviceAction::Down => Action::Down { device },
                DeviceAction::Up => Action::Up { device },
            }
        }
        (None, None, Some(l), Some(mbps)) => Action::Bandwidth {
            link: link_index(path, &key("link"), l, p)?,
            mbps: check_rate(path, &key("bandwidth_mbps"), mbps)?,
        },
        _ => {
            return Err(SimError::invalid(
                path,
                format!("event[{i}]"),
                "expected either `device` and `action` (\"down\" or \"up\") or `link` and \
                 `bandwidth_mbps`",
            ))
        }
    };
    Ok(Event { at_ms, action })
}

/// A time >= 0 [ms].
fn check_time(path: &Path, key: &str, t: f64) -> Result<f64, SimError> {
    if t.is_finite() && t >= 0.0 {
        Ok(t)
    } else {
        Err(SimError::invalid(path, key, "expected a time >= 0 [ms]"))
    }
}

/// A rate > 0 [Mbit/s].
fn check_rate(path: &Path, key: &str, r: f64) -> Result<f64, SimError> {
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err(SimError::invalid(path, key, "expected a rate > 0 [Mbit/s]"))
    }
}

/// The index of device `name`, or an error with the closest device name.
fn device_index(path: &Path, key: &str, name: &str, p: &Platform) -> Result<usize, SimError> {
    let names: Vec<String> = p.devices.iter().map(|d| d.name.clone()).collect();
    names.iter().position(|n| n == name).ok_or_else(|| {
        let hint = dicesim_plan::tomlfile::hint(name, &names);
        SimError::invalid(
            path,
            key,
            format!("no device `{name}` in the platform; {hint}"),
        )
    })
}

/// The index of link `name`, or an error with the closest link name.
fn link_index(path: &Path, key: &str, name: &str, p: &Platform) -> Result<usize, SimError> {
    let names: Vec<String> = p.links.iter().map(|l| l.name.clone()).collect();
    names.iter().position(|n| n == name).ok_or_else(|| {
        let hint = dicesim_plan::tomlfile::hint(name, &names);
        SimError::invalid(
            path,
            key,
            format!("no link `{name}` in the platform; {hint}"),
        )
    })
}

/// A `[[trace]]`'s CSV as bandwidth events, one per line.
fn read_trace(path: &Path, i: usize, t: &TraceTable, p: &Platform) -> Result<Vec<Event>, SimError> {
    let link = link_index(path, &format!("trace[{i}].link"), &t.link, p)?;
    let csv_path = relative(path, &t.file);
    let text = crate::error::read_text(&csv_path)
        .map_err(|e| e.named_by(path, &format!("trace[{i}].file"), &csv_path))?;
    parse_trace(&csv_path, &text, link)
}

/// Parses trace text: the header `time_ms,bandwidth_mbps`, then one `time,rate` per line.
fn parse_trace(csv_path: &Path, text: &str, link: usize) -> Result<Vec<Event>, SimError> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = rd
        .headers()
        .map_err(|e| SimError::invalid(csv_path, "line 1", e.to_string()))?;
    if header.iter().collect::<Vec<_>>() != ["time_ms", "bandwidth_mbps"] {
        return Err(SimError::invalid(
            csv_path,
            "line 1",
            "expected the header `time_ms,bandwidth_mbps`",
        ));
    }
    let mut out = Vec::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            SimError::invalid(csv_path, format!("line {line}"), e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        out.push(trace_line(csv_path, line, &rec, link)?);
    }
    Ok(out)
}

/// One trace line: `time_ms >= 0`, `bandwidth_mbps > 0`.
fn trace_line(
    csv_path: &Path,
    line: u64,
    rec: &csv::StringRecord,
    link: usize,
) -> Result<Event, SimError> {
    let key = format!("line {line}");
    let num = |s: &str| s.parse::<f64>().ok();
    let (Some(t), Some(r)) = (rec.get(0).and_then(num), rec.get(1).and_then(num)) else {
        return Err(SimError::invalid(
            csv_path,
            key,
            "expected two numbers `time_ms,bandwidth_mbps`",
        ));
    };
    Ok(Event {
        at_ms: check_time(csv_path, &key, t)?,
        action: Action::Bandwidth {
            link,
            mbps: check_rate(csv_path, &key, r)?,
        },
    })
}

/// `[adapt]` with defaults filled in and values checked.
fn check_adapt(path: &Path, a: AdaptTable) -> Result<Adapt, SimError> {
    let d = Adapt::default();
    let budget = a.budget.unwrap_or(d.budget);
    if budget == 0 {
        return Err(SimError::invalid(
            path,
            "adapt.budget",
            "expected at least 1 evaluation",
        ));
    }
    let factor = a.slowdown_factor.unwrap_or(d.slowdown_factor);
    if !(factor.is_finite() && factor > 1.0) {
        return Err(SimError::invalid(
            path,
            "adapt.slowdown_factor",
            "expected a number > 1 (a link is slow below its planned rate / factor)",
        ));
    }
    Ok(Adapt {
        on_device_loss: a.on_device_loss.unwrap_or(d.on_device_loss),
        on_slowdown: a.on_slowdown.unwrap_or(d.on_slowdown),
        strategy: a.strategy.unwrap_or(d.strategy),
        budget,
        slowdown_factor: factor,
        explore_latency: a.explore_latency.unwrap_or(d.explore_latency),
    })
}

/// The new mapping for `sc` on the platform as `state` leaves it: the scenario's allowed
/// units (`mapping.units`, or all) less those of the devices down, the links at their
/// current rates, chosen by `sc.adapt.strategy` (explore: seeded by `sc.seed`, so the
/// simulator and the coordinator choose the same plan).
pub fn replan(sc: &Scenario, state: &PlatformState) -> Result<Mapping, SimError> {
    let prep = state.prepared(&sc.prep);
    let units: Vec<usize> = strategy::allowed_units(&prep, sc.units.as_deref())?
        .into_iter()
        .filter(|&u| !state.down.contains(&prep.platform.units[u].device))
        .collect();
    if units.is_empty() {
        return Err(SimError::Mapping(
            "re-plan: no unit is left on the devices that are up".into(),
        ));
    }
    match sc.adapt.strategy {
        ReplanStrategy::Pipeedge => strategy::pipeedge(&prep, &units),
        ReplanStrategy::Explore => replan_explore(sc, prep, &units),
    }
}

/// `explore` over `units` with `sc.adapt.budget` evaluations: the feasible front's mapping
/// of highest throughput (then lowest latency, then earliest found).
fn replan_explore(
    sc: &Scenario,
    prep: PreparedScenario,
    units: &[usize],
) -> Result<Mapping, SimError> {
    let mut s = sc.clone();
    s.units = Some(
        units
            .iter()
            .map(|&u| prep.platform.units[u].full_name.clone())
            .collect(),
    );
    s.prep = prep;
    // the re-plan knows nothing of events to come (and must not search under them again)
    s.events.clear();
    let opts = crate::explore::ExploreOptions {
        budget: sc.adapt.budget,
        seed: sc.seed,
        population: 0,
        exhaustive_limit: 0,
        core_sets: false,
        horizontal: false,
    };
    let res = crate::explore::explore(&s, opts, None)?;
    let best = res
        .front
        .iter()
        .filter(|p| p.feasible())
        .min_by(|a, b| {
            (a.obj[1].total_cmp(&b.obj[1]))
                .then(a.obj[0].total_cmp(&b.obj[0]))
                .then(a.eval.cmp(&b.eval))
        })
        .ok_or_else(|| SimError::Mapping("re-plan: explore found no feasible mapping".into()))?;
    let assign = best.genome.assignment(s.prep.graph.layers.len());
    Ok(strategy::mapping_from_assignment(&s.prep, &assign))
}

/// Planning time of a re-plan with `adapt` [ms] (see [`PLAN_MS_PIPEEDGE`],
/// [`PLAN_MS_PER_EVALUATION`]).
pub fn plan_ms(adapt: &Adapt) -> f64 {
    match adapt.strategy {
        ReplanStrategy::Pipeedge => PLAN_MS_PIPEEDGE,
        ReplanStrategy::Explore => adapt.budget as f64 * PLAN_MS_PER_EVALUATION,
    }
}

/// One re-plan, as `run --json` (and the hil report) list it under `replans`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplanReport {
    /// When the event that caused it happened [ms].
    pub at_ms: f64,
    /// The event, in words (`device c down`, `link a-sw at 10 Mbit/s (planned 100)`).
    pub reason: String,
    /// Partitions of the plan replaced: `"<unit>: <first layer> .. <last layer> (<n> layers)"`.
    pub mapping_before: Vec<String>,
    /// Partitions of the new plan, in the same form.
    pub mapping_after: Vec<String>,
    /// From the event to its detection [ms].
    pub detect_ms: f64,
    /// Choosing the new plan [ms].
    pub plan_ms: f64,
    /// Shipping the sub-models the devices do not hold yet [ms].
    pub deploy_ms: f64,
    /// Frames in flight at the switch, run again on the new plan.
    pub frames_rerun: u32,
}

/// The partitions of `mapping` in the form of [`ReplanReport::mapping_before`].
pub fn describe_mapping(graph: &dicesim_plan::graph::Graph, mapping: &Mapping) -> Vec<String> {
    let Ok(plan) = dicesim_plan::partition::Plan::build(graph, mapping) else {
        return Vec::new();
    };
    let name = |l: Option<&usize>| l.map_or("", |&l| graph.layers[l].name.as_str());
    (plan.partitions.iter())
        .map(|p| {
            format!(
                "{}: {} .. {} ({} layers)",
                p.unit,
                name(p.layers.first()),
                name(p.layers.last()),
                p.layers.len()
            )
        })
        .collect()
}

/// The re-plans as text lines for `dicesim run`'s table.
pub fn replans_text(replans: &[ReplanReport], failed_frames: u32) -> String {
    use std::fmt::Write;
    let mut s = format!(
        "\nevents     {} re-plans   {failed_frames} failed frames\n",
        replans.len()
    );
    for r in replans {
        let _ = writeln!(
            s,
            "\nre-plan at {} ms: {}\n  detect {} ms + plan {} ms + deploy {} ms; {} frames re-run",
            r.at_ms, r.reason, r.detect_ms, r.plan_ms, r.deploy_ms, r.frames_rerun
        );
        let _ = writeln!(s, "  before: {}", r.mapping_before.join(" | "));
        let _ = writeln!(s, "  after:  {}", r.mapping_after.join(" | "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lines_become_events_and_bad_lines_name_their_line() {
        let p = Path::new("bw.csv");
        let ev = parse_trace(p, "time_ms,bandwidth_mbps\n0,100\n500, 10\n", 2).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].at_ms, 500.0);
        assert_eq!(
            ev[1].action,
            Action::Bandwidth {
                link: 2,
                mbps: 10.0
            }
        );
        let e = parse_trace(p, "time_ms,bandwidth_mbps\n0,100\n5,x\n", 0).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = parse_trace(p, "t,bw\n0,100\n", 0).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = parse_trace(p, "time_ms,bandwidth_mbps\n-1,100\n", 0).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
