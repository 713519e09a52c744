//! State shared by all handlers.

use std::path::PathBuf;
use std::sync::Arc;

use crate::api_key::ApiKey;

#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    api_key: ApiKey,
    data_dir: PathBuf,
}

impl AppState {
    pub fn new(api_key: ApiKey, data_dir: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner { api_key, data_dir }),
        }
    }

    pub fn api_key(&self) -> &ApiKey {
        &self.inner.api_key
    }

    /// Where the server keeps its files (recordings, state) in later issues.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }
}
