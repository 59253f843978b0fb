//! A resource whose Create does what its `Behaviour` property says, on the real shared runtime:
//! the integration tests use it to drive the protocol paths no real resource should reach on purpose.

use std::time::Duration;

use serde::Deserialize;
use tapguard_shared::{CustomResource, HandlerError, Invocation, Outcome};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Properties {
    behaviour: String,
    #[serde(default)]
    secret: Option<String>,
}

struct Probe;

impl CustomResource for Probe {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::ProtocolProbe";
    const ID_PREFIX: &'static str = "probe:";
    const RETIRED_PROPERTIES: &'static [(&'static str, &'static str)] =
        &[("Mode", "use Behaviour; Mode was its name in an older version")];
    // It calls no AWS operation itself: only the runtime's own answer records.
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[];

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        // One line per piece of work done, so the tests can count them (a duplicate must not redo it).
        tracing::info!(behaviour = props.behaviour, "probe work started");
        match props.behaviour.as_str() {
            "ok" => Ok(Outcome::new("probe:1").with("Answer", 42)),
            // Blocks its thread: only a guard on another thread can still answer.
            "block" => {
                inv.step("blocking its thread on purpose");
                std::thread::sleep(Duration::from_secs(600));
                Ok(Outcome::new("probe:blocked"))
            }
            "busy" => {
                inv.step("spinning on purpose");
                let until = std::time::Instant::now() + Duration::from_secs(600);
                while std::time::Instant::now() < until {
                    std::hint::spin_loop();
                }
                Ok(Outcome::new("probe:spun"))
            }
            // The process dies as in an out-of-memory kill or an abort: no answer from it at all.
            "abort" => std::process::abort(),
            // Waits long enough for a test to kill the process mid-event.
            "linger" => {
                inv.step("lingering on purpose");
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Outcome::new("probe:lingered"))
            }
            "panic" => panic!("probe panicked on purpose"),
            "sleep" => {
                inv.step("sleeping on purpose");
                tokio::time::sleep(Duration::from_secs(600)).await;
                Ok(Outcome::new("probe:slept"))
            }
            "huge-data" => Ok((0..20).fold(Outcome::new("probe:big"), |o, i| {
                o.with(&format!("Key{i}"), "v".repeat(300))
            })),
            "no-echo" => {
                let mut outcome = Outcome::new("probe:secret").with("Password", props.secret.unwrap_or_default());
                outcome.no_echo = true;
                Ok(outcome)
            }
            "empty-id" => Ok(Outcome::new("")),
            // What the runtime worked out about the event: partition, region and account.
            "whoami" => Ok(Outcome::new("probe:whoami")
                .with("Partition", &inv.partition)
                .with("Region", &inv.region)
                .with("Account", &inv.account_id)),
            other => Err(HandlerError::Failed(format!("unknown behaviour {other}"))),
        }
    }

    async fn update(
        &self,
        inv: &Invocation,
        _id: &str,
        props: Properties,
        _old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        self.create(inv, props).await
    }

    async fn delete(&self, _inv: &Invocation, _id: &str, _props: Option<Properties>) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tapguard_shared::init_logging();
    tapguard_shared::run(|_| Probe).await
}
