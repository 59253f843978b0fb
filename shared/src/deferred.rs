//! What a handler builds from the AWS configuration, built off the way to the first event.
//!
//! The SDK's HTTPS client reads and parses the system's root certificates when the first client is
//! built. Done in `main`, that was on the way to the first `GET /next` of the Lambda Runtime API, and so
//! in every cold start. [`Deferred::start`] loads the configuration and builds the value on a task of its
//! own, at once; [`Deferred::get`] waits for it (or builds it, if that task has not run yet).

use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

type Make<T> = Box<dyn FnOnce(&SdkConfig) -> T + Send>;

pub struct Deferred<T> {
    value: Arc<OnceCell<T>>,
    /// Taken by whichever of the task and a `get` builds the value (a `OnceCell` initialiser runs once).
    make: Arc<Mutex<Option<Make<T>>>>,
}

impl<T> Clone for Deferred<T> {
    fn clone(&self) -> Self {
        Deferred {
            value: Arc::clone(&self.value),
            make: Arc::clone(&self.make),
        }
    }
}

impl<T: Send + Sync + 'static> Deferred<T> {
    /// Starts building the value from [`crate::aws_config`] on a task of its own. Needs a Tokio runtime.
    pub fn start(make: impl FnOnce(&SdkConfig) -> T + Send + 'static) -> Self {
        let deferred = Deferred {
            value: Arc::default(),
            make: Arc::new(Mutex::new(Some(Box::new(make)))),
        };
        let early = deferred.clone();
        tokio::spawn(async move {
            early.get().await;
        });
        deferred
    }

    /// The value, once built.
    pub async fn get(&self) -> &T {
        self.value
            .get_or_init(|| async {
                let config = crate::aws_config().await;
                let make = self
                    .make
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .expect("a deferred value is built once");
                make(&config)
            })
            .await
    }
}
