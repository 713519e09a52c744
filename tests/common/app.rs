//! The whole HTTP app (REST API, SFU, room programs) in process on a free loopback port, with
//! recordings in a local directory: tests reach the hub and the SFU directly.

use std::sync::Arc;

use tessera::api_key::ApiKey;
use tessera::media::ProgramHub;
use tessera::server::{AppState, Media};
use tessera_sfu::{Sfu, SfuConfig};

pub struct App {
    pub rt: tokio::runtime::Runtime,
    pub port: u16,
    pub hub: ProgramHub,
    pub sfu: Sfu,
    pub dir: tempfile::TempDir,
}

impl App {
    pub fn start(key: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let storage = tessera::config::StorageConfig { s3_bucket: None, s3_prefix: String::new() };
        let store = tessera::recordings::store::RecordingStore::new(dir.path(), storage).unwrap();
        let hub = ProgramHub::new();
        let sfu = Sfu::new(SfuConfig::default(), Some(Arc::new(hub.clone())));
        let state = AppState::new(ApiKey::new(key.to_string()).unwrap(), dir.path().to_owned()).with_media(Media::new(
            sfu.clone(),
            hub.clone(),
            store,
        ));
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(async move {
            let _ = axum::serve(listener, tessera::server::app(state)).await;
        });
        App { rt, port, hub, sfu, dir }
    }
}
