//! Not built yet: see the open issue for the deployer.
fn main() {}
