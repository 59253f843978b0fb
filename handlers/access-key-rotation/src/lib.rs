//! Custom::AccessKeyRotation. The binary is `main.rs`; the resource, its properties and the pass are here
//! so tests and the benchmark can use them.

mod pass;
pub mod report;
mod resource;

pub use pass::{secret_name, Summary};
pub use resource::{AccessKeyRotation, Mode, Properties, Tuning, PROPERTY_NAMES};
