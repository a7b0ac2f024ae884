//! The control handler of a running daemon: one function per route, this
//! file only dispatches.

use std::sync::Arc;

use serde_json::Value;

use super::{Shared, config, parts, read};
use crate::control::{ApiError, ControlHandler, ControlRequest};

/// The control handler of a running daemon.
#[derive(Debug, Clone)]
pub struct Handler(pub Arc<Shared>);

impl ControlHandler for Handler {
    async fn handle(&self, req: ControlRequest) -> Result<Value, ApiError> {
        let s = &self.0;
        match req {
            ControlRequest::Status => read::status(s).await,
            ControlRequest::Get { subject, query } => read::get(s, &subject, &query).await,
            ControlRequest::Describe {
                target,
                events_limit,
            } => read::describe(s, target, events_limit).await,
            ControlRequest::Explain { policy } => read::explain(s, &policy).await,
            ControlRequest::ExplainGateway { gateway } => {
                crate::gateway::explain(s, &gateway).await
            }
            ControlRequest::Cordon { node, on } => crate::gateway::cordon(s, &node, on),
            ControlRequest::Events {
                since_id,
                topic,
                resource,
                limit,
                wait,
            } => read::events(s, since_id, topic, resource, limit, wait).await,
            ControlRequest::Dynamic { source } => read::dynamic(s, source.as_deref()).await,
            ControlRequest::Validate(req) => config::validate(s, req).await,
            ControlRequest::Plan(req) => config::plan(s, req).await,
            ControlRequest::Apply(req) => config::apply(s, req).await,
            ControlRequest::Delete(req) => config::delete(s, req).await,
            ControlRequest::PluginRun(req) => parts::run_plugin(s, &req.name).await,
            ControlRequest::DynamicDrop { request, uid } => {
                parts::drop_part(s, &request.part, uid).await
            }
        }
    }
}
