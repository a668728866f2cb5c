//! zkscale: scale, upgrade and migrate ZooKeeper ensembles on Kubernetes one safe step at a time.
//!
//! Layers (each with its own error type):
//! - pure core: [`model`] (server lists, members), [`plan`] (quorum math, step planner)
//! - adapters: [`zk`] (four-letter words, health verdict), [`manifest`] (YAML stream rewrite),
//!   [`cluster`] (Kubernetes)
//! - [`engine`]: the steps and gates, shared by both front ends
//! - front ends: the kubectl plugin (`src/main.rs`) and the Helm post-renderer ([`postrender`],
//!   whose command line is in `src/main.rs` too).

pub mod cli;
pub mod cluster;
pub mod engine;
pub mod exit;
pub mod fuzzing;
pub mod guard;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod postrender;
pub mod report;
pub mod telemetry;
pub mod version;
pub mod zk;
