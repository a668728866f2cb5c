//! Shared test support. Each test crate does `mod support;` and uses what it needs.

#![allow(dead_code)]

pub mod bed;
pub mod chart;
pub mod cli;
pub mod fixtures;
pub mod guard;
pub mod helm;
pub mod scenario;
pub mod sources;
pub mod writer;
pub mod zk_client;
pub mod zk_ensemble;
