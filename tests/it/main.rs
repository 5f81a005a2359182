//! Integration tests: the real `pbiops` binary against `pbiops-emulator` on an ephemeral port.
//!
//! One test binary (faster to link); one emulator per test (no shared state, tests run in
//! parallel). Time is driven by the emulator's state and tiny poll bounds, never by racing
//! the wall clock.

mod alerts;
mod auth;
mod auth_methods;
mod capacity;
mod claims;
mod console;
mod contract;
mod dataflows;
mod engine;
mod faults;
mod fleet;
mod interrupt;
mod networks;
mod preflight;
mod refresh;
mod single_flight;
mod status;
mod store;
mod support;
mod throttle;
mod timeline;
mod waiting;
