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

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        match props.behaviour.as_str() {
            "ok" => Ok(Outcome::new("probe:1").with("Answer", 42)),
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
    tapguard_shared::run(Probe).await
}
