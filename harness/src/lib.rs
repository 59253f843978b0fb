//! Plays AWS's parts for the handler binaries, on this machine: the Lambda Runtime API that runs them,
//! CloudFormation's events and ResponseURLs, and the local AWS emulator they call.
//! The integration tests, `make demo` and the deployer's `local` command all use it.

pub mod cloudformation;
pub mod emulator;
pub mod lambda;
pub mod responses;

pub use cloudformation::{event, CustomResourceDriver, Exchange};
pub use emulator::{xml_value, Account, Emulator};
pub use lambda::{binary_path, failure_record, InvokeResult, LambdaHost};
pub use responses::{Answer, ResponseServer};
