//! The node's id: configured, or generated once and kept in the data directory so that a
//! restarted node is the same node.

use std::path::Path;

use crate::error::{ClusterError, Result};

const FILE: &str = "node-id";

/// Letters, digits, '-', '_' and '.', 1 to 64 (a Kubernetes node name fits): safe in Redis
/// keys, URLs and logs.
pub fn valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.')
}

/// `DATA_DIR/node-id`, created with a random id (`node-` and 12 hex digits) the first time.
pub fn load_or_create(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(FILE);
    let io = |source| ClusterError::NodeIdFile { path: path.clone(), source };
    match std::fs::read_to_string(&path) {
        Ok(text) if valid(text.trim()) => return Ok(text.trim().to_owned()),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "the node id file holds no valid id; writing a new one")
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io(err)),
    }
    let id = format!("node-{}", crate::random::hex(6));
    std::fs::create_dir_all(data_dir).map_err(io)?;
    std::fs::write(&path, format!("{id}\n")).map_err(io)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = load_or_create(dir.path()).unwrap();
        assert!(valid(&id) && id.starts_with("node-") && id.len() == 17, "{id}");
        assert_eq!(load_or_create(dir.path()).unwrap(), id);
        std::fs::write(dir.path().join(FILE), "bad id!\n").unwrap();
        let new = load_or_create(dir.path()).unwrap();
        assert_ne!(new, id);
        assert!(valid(&new));
    }

    #[test]
    fn ids_are_key_safe() {
        assert!(valid("node-a1") && valid("eu_1") && valid("ip-10-0-0-5.ec2.internal"));
        assert!(!valid("") && !valid("a:b") && !valid("a b") && !valid("..") && !valid(&"x".repeat(65)));
    }
}
