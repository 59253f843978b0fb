//! Plays CloudFormation's part for one custom resource: sends Create, Update and Delete events as
//! CloudFormation does, with a fresh ResponseURL each, and reads back the response that was PUT there.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::lambda::{InvokeResult, LambdaHost};
use crate::responses::ResponseServer;

/// What one event produced.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The event as sent (ResponseURL included).
    pub event: Value,
    /// The response body PUT to the ResponseURL, if any arrived.
    pub response: Option<Value>,
    /// What the function returned to the Lambda Runtime API.
    pub invoke: InvokeResult,
}

impl Exchange {
    pub fn response(&self) -> &Value {
        self.response
            .as_ref()
            .unwrap_or_else(|| panic!("no response was PUT; the function returned {:?}", self.invoke))
    }

    pub fn status(&self) -> &str {
        self.response()["Status"].as_str().unwrap_or_default()
    }

    pub fn reason(&self) -> &str {
        self.response()["Reason"].as_str().unwrap_or_default()
    }

    pub fn physical_id(&self) -> &str {
        self.response()["PhysicalResourceId"].as_str().unwrap_or_default()
    }

    pub fn data(&self, key: &str) -> Option<&str> {
        self.response()["Data"][key].as_str()
    }

    pub fn response_url(&self) -> &str {
        self.event["ResponseURL"].as_str().unwrap_or_default()
    }
}

/// Builds a CloudFormation custom-resource event.
#[allow(clippy::too_many_arguments)]
pub fn event(
    request_type: &str,
    resource_type: &str,
    logical_id: &str,
    stack_id: &str,
    response_url: &str,
    properties: &Value,
    physical_id: Option<&str>,
    old_properties: Option<&Value>,
) -> Value {
    let mut e = Map::new();
    e.insert("RequestType".into(), json!(request_type));
    e.insert(
        "ServiceToken".into(),
        json!("arn:aws:lambda:us-east-1:123456789012:function:tapguard"),
    );
    e.insert("ResponseURL".into(), json!(response_url));
    e.insert("StackId".into(), json!(stack_id));
    e.insert(
        "RequestId".into(),
        json!(format!(
            "{:08x}-0000-4000-8000-{:012x}",
            rand::random::<u32>(),
            rand::random::<u64>() & 0xffff_ffff_ffff
        )),
    );
    e.insert("LogicalResourceId".into(), json!(logical_id));
    e.insert("ResourceType".into(), json!(resource_type));
    let mut props = properties.clone();
    if let Value::Object(map) = &mut props {
        map.insert(
            "ServiceToken".into(),
            json!("arn:aws:lambda:us-east-1:123456789012:function:tapguard"),
        );
    }
    e.insert("ResourceProperties".into(), props);
    if let Some(id) = physical_id {
        e.insert("PhysicalResourceId".into(), json!(id));
    }
    if let Some(old) = old_properties {
        e.insert("OldResourceProperties".into(), old.clone());
    }
    Value::Object(e)
}

/// One logical custom resource in one stack, driven through its lifecycle as CloudFormation would.
pub struct CustomResourceDriver<'a> {
    pub host: &'a LambdaHost,
    pub responses: &'a ResponseServer,
    pub resource_type: String,
    pub logical_id: String,
    pub stack_id: String,
    /// The physical id CloudFormation knows, after the last Create or Update.
    pub physical_id: Option<String>,
    /// The properties CloudFormation knows, after the last successful Create or Update.
    pub properties: Value,
    /// The Lambda timeout given to each invocation.
    pub timeout: Duration,
}

impl<'a> CustomResourceDriver<'a> {
    pub fn new(
        host: &'a LambdaHost,
        responses: &'a ResponseServer,
        resource_type: &str,
        logical_id: &str,
        stack_id: &str,
    ) -> Self {
        CustomResourceDriver {
            host,
            responses,
            resource_type: resource_type.to_string(),
            logical_id: logical_id.to_string(),
            stack_id: stack_id.to_string(),
            physical_id: None,
            properties: json!({}),
            timeout: Duration::from_secs(60),
        }
    }

    /// Sends any event (a fixture, a malformed one) with a fresh ResponseURL and collects the outcome.
    pub fn send(&self, mut event: Value) -> Exchange {
        let url = self.responses.url();
        event["ResponseURL"] = json!(url);
        let invoke = self.host.invoke(&event, self.timeout);
        let response = self.responses.wait_for(&url, Duration::from_secs(2));
        Exchange {
            event,
            response,
            invoke,
        }
    }

    fn lifecycle_event(&self, request_type: &str, properties: &Value, old: Option<&Value>) -> Value {
        event(
            request_type,
            &self.resource_type,
            &self.logical_id,
            &self.stack_id,
            "",
            properties,
            self.physical_id.as_deref(),
            old,
        )
    }

    pub fn create(&mut self, properties: Value) -> Exchange {
        self.physical_id = None;
        let exchange = self.send(self.lifecycle_event("Create", &properties, None));
        if let Some(response) = &exchange.response {
            // After a FAILED Create, CloudFormation still sends a Delete with the id it was given.
            self.physical_id = response["PhysicalResourceId"].as_str().map(str::to_string);
            if response["Status"] == "SUCCESS" {
                self.properties = properties;
            }
        }
        exchange
    }

    pub fn update(&mut self, properties: Value) -> Exchange {
        let old = self.properties.clone();
        let exchange = self.send(self.lifecycle_event("Update", &properties, Some(&old)));
        if exchange.response.as_ref().is_some_and(|r| r["Status"] == "SUCCESS") {
            self.physical_id = exchange.response()["PhysicalResourceId"].as_str().map(str::to_string);
            self.properties = properties;
        }
        exchange
    }

    pub fn delete(&mut self) -> Exchange {
        let props = self.properties.clone();
        self.send(self.lifecycle_event("Delete", &props, None))
    }
}
