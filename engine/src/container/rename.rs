//! `rename`: a container's name is only a field of its record, so renaming
//! is a read-modify-write of that record under the store's lock (see the
//! `state` module), with docker's checks: a valid name, not its own, and
//! not another container's.

use anyhow::{bail, Result};

use crate::engine::Engine;
use crate::state::validate_name;

/// Give the container `container` (a name, ID or ID prefix) the name `new`
/// (docker accepts a leading slash).
pub fn rename(engine: &Engine, container: &str, new: &str) -> Result<()> {
    validate_name(new)?;
    let new = new.trim_start_matches('/').to_string();
    let lock = engine.containers.lock()?;
    let all = engine.containers.list()?;
    let record = engine.containers.resolve(container)?;
    if record.name == new {
        bail!("Renaming a container with the same name as its current name");
    }
    if let Some(other) = all.iter().find(|o| o.name == new) {
        bail!("Conflict. The container name \"/{new}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.", other.id);
    }
    let mut r = engine.containers.load(&record.id)?;
    let old = std::mem::replace(&mut r.name, new);
    engine.containers.save(&lock, &r)?;
    drop(lock);
    crate::events::container(engine, &r, "rename", &[("oldName", format!("/{old}"))]);
    Ok(())
}
