//! Docker Compose assembly (filled in by the Compose work).

use crate::model::Resource;
use crate::tiltfile::state::State;

/// Compose services as resources, in the compose files' service order.
#[derive(Debug, Default)]
pub struct ComposeAssembly {
    pub resources: Vec<Resource>,
}

pub fn assemble(_state: &mut State) -> Result<ComposeAssembly, String> {
    Ok(ComposeAssembly::default())
}
