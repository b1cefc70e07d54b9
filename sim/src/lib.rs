//! dicesim simulator: a deterministic discrete-event simulation of partitioned CNN
//! inference on a platform of edge devices (compute units, links, shared media, power,
//! memory), the mapping strategies, the fast evaluator used by the search, and reports.
#![warn(missing_docs)]

pub mod engine;
pub mod error;
pub mod kernel;
pub mod network;
pub mod platform;
pub mod prepared;
pub mod report;

pub use error::SimError;
pub use prepared::{Metrics, PreparedScenario, SimPlan, Workload};
