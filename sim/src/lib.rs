//! dicesim simulator: a deterministic discrete-event simulation of partitioned CNN
//! inference on a platform of edge devices (compute units, links, shared media, power,
//! memory), the mapping strategies, the fast evaluator used by the search, and reports.
//!
//! Entry points: [`run_scenario`] (what `dicesim run` calls) and
//! [`PreparedScenario::evaluate`] (what the search calls).
#![warn(missing_docs)]

mod adapt;
pub mod compute;
pub mod engine;
pub mod error;
pub mod events;
pub mod explore;
pub mod files;
pub mod kernel;
pub mod memory;
mod modelsrc;
pub mod network;
pub mod platform;
pub mod prepared;
pub mod report;
pub mod scenario;
pub mod sharing;
pub mod strategy;
pub mod trace;

pub use engine::{SimPlan, Window, Workload};
pub use error::SimError;
pub use prepared::{Metrics, PreparedScenario};
pub use report::Report;
pub use scenario::{run_loaded, run_scenario, RunOptions, Scenario, ScenarioRun, Strategy};
