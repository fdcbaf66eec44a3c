//! The `policy_dir` target: a policy file added to the default set.

use orgstore::{Actor, ErrorKind, KeyId, OrgId, Policies, Role};

use super::Failure;

/// A temporary directory removed on drop (the fuzz crate has no `tempfile`).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Result<Self, Failure> {
        let p = std::env::temp_dir().join(format!("orgstore-fuzz-{}", KeyId::random()));
        std::fs::create_dir(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Policy directory loading: the bytes as `fuzz.cedar` added to the default set. A bad file
/// is rejected with kind `Invalid` naming the file; a good one yields a usable set.
pub fn policy_dir(data: &[u8]) -> Result<(), Failure> {
    let dir = TempDir::new()?;
    std::fs::write(dir.0.join("fuzz.cedar"), data).map_err(|e| format!("write: {e}"))?;
    let base = Policies::default_set().map_err(|e| format!("default set does not load: {e}"))?;
    match base.with_dir(&dir.0) {
        Ok(p) => {
            let org = OrgId::parse("acme").map_err(|e| e.to_string())?;
            let actor = Actor::Operator;
            for action in orgstore::AdminAction::ALL {
                let req = orgstore::AdminRequest {
                    actor: &actor,
                    actor_role: Some(Role::Viewer),
                    action,
                    org: &org,
                    owner_count: 1,
                    target: orgstore::Target::Org,
                };
                let _ = p.authorize(&req);
            }
        }
        Err(e) => {
            ensure!(
                e.kind() == ErrorKind::Invalid,
                "bad policy file gave kind {:?}: {e}",
                e.kind()
            );
            ensure!(
                e.to_string().contains("fuzz.cedar"),
                "error does not name the file: {e}"
            );
        }
    }
    Ok(())
}
