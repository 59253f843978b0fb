//! Unit tests of the resource's paths, with Security Hub mocked (aws-smithy-mocks) and the ledger in the
//! in-memory Parameter Store (`tapguard_shared::ssm::memory`), so that what one call writes the next one
//! reads.

mod claims;
mod controls;
mod resource;

use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::Ledger;

/// The ledger of this handler over `store`.
pub(crate) fn ledger(store: &MemoryStore) -> Ledger {
    Ledger::from_client(store.client(), "securityhub-standards")
}
