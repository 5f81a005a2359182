//! The emulator driven over real HTTP: tokens, discovery, refreshes, the control API, faults and
//! the binary. Every test starts its own emulator on a free port, so tests are independent, and
//! refreshes progress by counted polls, never by sleeping.

#![allow(clippy::unwrap_used)]

mod assertions;
mod binary;
mod clouds;
mod control;
mod dataflows;
mod discovery;
mod fabric;
mod faults;
mod flows;
mod load;
mod managed;
mod refreshes;
mod support;
mod surge;
mod tokens;
