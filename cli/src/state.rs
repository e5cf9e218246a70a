//! What an interrupted `upload put` leaves to resume: one small JSON file per upload under
//! `$XDG_STATE_HOME/upload` (else `~/.local/state/upload`), named for the API, the file's
//! canonical path, its size and its modification time. A file changed since (another size or
//! mtime) is another key, and starts anew.
//!
//! It holds the create's `Idempotency-Key` and body, written before the create is sent, so a
//! create whose answer was lost is sent again with its key and finds its file instead of making
//! a second one; then the file's id and job. What storage has is never kept here: on resume,
//! `GET …/parts` says. Nor is the whole file's SHA-256 state: a resumed upload hashes the whole
//! file again, reading it in order beside the parts it sends (reading is cheap next to sending).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Which local file, as of which version, for which API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub api: String,
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: u128,
}

impl Identity {
    pub fn new(api: &str, path: PathBuf, metadata: &std::fs::Metadata) -> Self {
        let mtime_ns = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_nanos());
        Self {
            api: api.trim_end_matches('/').to_owned(),
            path,
            size: metadata.len(),
            mtime_ns,
        }
    }

    /// The state file's name: a digest of the four, so that any of them changing is a new key.
    pub fn file_name(&self) -> String {
        let mut hasher = Sha256::new();
        for field in [
            self.api.as_bytes(),
            self.path.as_os_str().as_encoded_bytes(),
            self.size.to_string().as_bytes(),
            self.mtime_ns.to_string().as_bytes(),
        ] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field);
        }
        let digest = hex::encode(hasher.finalize());
        format!("{}.json", &digest[..32])
    }
}

/// An upload begun and not yet completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    pub api: String,
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: u128,
    /// The create's `Idempotency-Key` and exactly the body sent with it.
    pub create_key: String,
    pub create_body: Value,
    /// Once the create answered.
    pub file_id: Option<String>,
    pub job_id: Option<String>,
}

impl Resume {
    pub fn new(identity: &Identity, create_key: String, create_body: Value) -> Self {
        Self {
            api: identity.api.clone(),
            path: identity.path.clone(),
            size: identity.size,
            mtime_ns: identity.mtime_ns,
            create_key,
            create_body,
            file_id: None,
            job_id: None,
        }
    }

    /// The local file this state is for.
    pub fn identity(&self) -> Identity {
        Identity {
            api: self.api.clone(),
            path: self.path.clone(),
            size: self.size,
            mtime_ns: self.mtime_ns,
        }
    }

    fn is_for(&self, identity: &Identity) -> bool {
        self.api == identity.api
            && self.path == identity.path
            && self.size == identity.size
            && self.mtime_ns == identity.mtime_ns
    }
}

/// The folder of resume files.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// `$XDG_STATE_HOME/upload`, else `$HOME/.local/state/upload`; none without either (then
    /// nothing is resumable, and `put` says so).
    pub fn from_env() -> Option<Self> {
        let state_home = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|home| home.is_absolute())
                    .map(|home| home.join(".local/state"))
            })?;
        Some(Self::at(state_home.join("upload")))
    }

    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The upload of `identity` begun earlier, if any. An unreadable or foreign file is ignored
    /// (and replaced by the next save).
    pub fn load(&self, identity: &Identity) -> Option<Resume> {
        let text = std::fs::read(self.dir.join(identity.file_name())).ok()?;
        let state: Resume = serde_json::from_slice(&text).ok()?;
        state.is_for(identity).then_some(state)
    }

    /// Written beside its final name and renamed: a crash never leaves half a file.
    pub fn save(&self, state: &Resume) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(state.identity().file_name());
        let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &path)
    }

    pub fn remove(&self, identity: &Identity) {
        // Already gone is fine: nothing is left to resume either way.
        let _ = std::fs::remove_file(self.dir.join(identity.file_name()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(path: &str, size: u64, mtime_ns: u128) -> Identity {
        Identity {
            api: "http://127.0.0.1:9000/v1/projects/dev".into(),
            path: PathBuf::from(path),
            size,
            mtime_ns,
        }
    }

    #[test]
    fn the_key_changes_with_path_size_mtime_and_api() {
        let base = identity("/data/a.bin", 10, 1);
        let mut other_api = base.clone();
        other_api.api = "http://127.0.0.1:9000/v1/projects/other".into();
        let names = [
            base.file_name(),
            identity("/data/b.bin", 10, 1).file_name(),
            identity("/data/a.bin", 11, 1).file_name(),
            identity("/data/a.bin", 10, 2).file_name(),
            other_api.file_name(),
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(base.file_name(), identity("/data/a.bin", 10, 1).file_name());
        assert_eq!(base.file_name().len(), 32 + ".json".len());
    }

    #[test]
    fn the_key_does_not_confuse_fields_that_run_together() {
        // "/a" + "1" + "23" against "/a1" + "2" + "3": lengths separate the fields.
        assert_ne!(
            identity("/a", 1, 23).file_name(),
            identity("/a1", 2, 3).file_name()
        );
    }

    #[test]
    fn saved_state_loads_for_its_file_only_and_is_removed() {
        let dir = std::env::temp_dir().join(format!("upload-cli-state-{}", uuid::Uuid::new_v4()));
        let store = Store::at(dir.clone());
        let file = identity("/data/a.bin", 10, 1);
        assert_eq!(store.load(&file), None);
        let mut state = Resume::new(&file, "key-1".into(), json!({"file_name": "a.bin"}));
        state.file_id = Some("f-1".into());
        store.save(&state).unwrap();
        assert_eq!(store.load(&file), Some(state));
        assert_eq!(store.load(&identity("/data/a.bin", 10, 2)), None);
        store.remove(&file);
        assert_eq!(store.load(&file), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_state_file_is_ignored() {
        let dir = std::env::temp_dir().join(format!("upload-cli-state-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = identity("/data/a.bin", 10, 1);
        std::fs::write(dir.join(file.file_name()), b"{ half").unwrap();
        assert_eq!(Store::at(dir.clone()).load(&file), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
