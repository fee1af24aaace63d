//! Stats (the runtime's `events --stats` as containerd metrics) and the
//! OOM events (`runtime events`, a stream child per running container).

use std::io::{BufRead, BufReader};

use containerd_shim::protos::events::task::TaskOOM;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::shim::shim::{StatsRequest, StatsResponse};
use log::warn;

use super::Service;
use crate::error::Result;
use crate::runtime::Runtime;

impl Service {
    /// Runs `runtime events ID` and publishes TaskOOM for its oom lines.
    pub(super) fn watch_oom(&self, id: &str, runtime: &Runtime) -> Option<i32> {
        let mut child = match runtime.spawn_stream(&["events", "--interval", "1h", id]) {
            Ok(c) => c,
            Err(e) => {
                warn!("no OOM events for {id}: {e}");
                return None;
            }
        };
        let out = child.stdout.take()?;
        let svc = self.clone();
        let cid = id.to_string();
        let _ = std::thread::Builder::new().name("oom".into()).stack_size(128 * 1024).spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v.get("type").and_then(|t| t.as_str()) == Some("oom") {
                    svc.publish(TaskOOM { container_id: cid.clone(), ..Default::default() });
                }
            }
        });
        Some(child.id() as i32)
    }
    pub(super) fn do_stats(&self, req: StatsRequest) -> Result<StatsResponse> {
        let runtime = self.runtime_of(&req.id)?;
        let out = runtime.output(&["events", "--stats", &req.id], None)?;
        let stats = crate::metrics::first_stats(&out)?;
        let any = crate::metrics::for_containerd(&stats, crate::metrics::host_is_unified).into_any()?;
        Ok(StatsResponse { stats: MessageField::some(any), ..Default::default() })
    }
}
