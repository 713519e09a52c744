//! State shared by all handlers.

use std::path::PathBuf;
use std::sync::Arc;

use crate::api_key::ApiKey;
use crate::cluster::ClusterNode;
use crate::hls::HlsOutputs;
use crate::media::ProgramHub;
use crate::recordings::Recordings;
use crate::recordings::store::RecordingStore;
use crate::streams::Streams;
use crate::tokens::TokenSigner;

#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// The live side: the SFU, the room programs it feeds, and their recordings.
#[derive(Clone)]
pub struct Media {
    pub sfu: tessera_sfu::Sfu,
    pub hub: ProgramHub,
    pub recordings: Recordings,
    pub streams: Streams,
    pub hls: HlsOutputs,
}

impl Media {
    pub fn new(sfu: tessera_sfu::Sfu, hub: ProgramHub, store: RecordingStore) -> Self {
        let streams = Streams::new(hub.clone(), store.data_dir());
        let hls = HlsOutputs::new(hub.clone(), store.data_dir(), store.s3_bucket());
        let recordings = Recordings::new(store, hub.clone());
        Media { sfu, hub, recordings, streams, hls }
    }
}

/// What a graceful stop finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub streams: usize,
    pub hls: usize,
    pub recordings: crate::recordings::FinishedRecordings,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.recordings;
        write!(
            f,
            "{} stream(s) and {} HLS output(s) stopped; recordings: {} completed, {} failed, {} unfinished",
            self.streams, self.hls, r.completed, r.failed, r.unfinished
        )
    }
}

impl Media {
    /// Ends every running stream and recording and waits, until `deadline` at the latest,
    /// for the recordings to be stored whole: the work of a graceful stop.
    pub fn finish(&self, deadline: std::time::Instant) -> Finished {
        std::thread::scope(|scope| {
            let streams = scope.spawn(|| self.streams.stop_all());
            let hls = scope.spawn(|| self.hls.stop_all());
            let recordings = self.recordings.finish_all(deadline);
            Finished { streams: streams.join().unwrap_or(0), hls: hls.join().unwrap_or(0), recordings }
        })
    }
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media").field("rooms", &self.sfu.rooms()).finish()
    }
}

#[derive(Debug)]
struct Inner {
    api_key: ApiKey,
    data_dir: PathBuf,
    tokens: TokenSigner,
    media: Option<Media>,
    /// This node's id (in a cluster, its id there; alone, kept in the data directory too).
    node_id: String,
    /// Cluster mode: this node's part in it.
    cluster: Option<ClusterNode>,
}

impl AppState {
    /// State without the SFU (the HTTP API alone). The token signing key is read from, or
    /// created in, `data_dir`; if that fails, an in-memory key is used (tokens then do not
    /// survive a restart).
    pub fn new(api_key: ApiKey, data_dir: PathBuf) -> Self {
        let tokens = TokenSigner::load_or_create(&data_dir).unwrap_or_else(|err| {
            tracing::warn!(%err, "cannot keep the token signing key in the data directory; using a temporary one");
            TokenSigner::from_key(crate::ids::random_bytes())
        });
        let node_id = "local".to_owned();
        Self { inner: Arc::new(Inner { api_key, data_dir, tokens, media: None, node_id, cluster: None }) }
    }

    fn rebuilt(&self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            api_key: self.inner.api_key.clone(),
            data_dir: self.inner.data_dir.clone(),
            tokens: self.inner.tokens.clone(),
            media: self.inner.media.clone(),
            node_id: self.inner.node_id.clone(),
            cluster: self.inner.cluster.clone(),
        };
        change(&mut inner);
        Self { inner: Arc::new(inner) }
    }

    /// The same state with the SFU and room programs.
    pub fn with_media(self, media: Media) -> Self {
        self.rebuilt(|inner| inner.media = Some(media))
    }

    /// The same state with this node's id.
    pub fn with_node_id(self, node_id: String) -> Self {
        self.rebuilt(|inner| inner.node_id = node_id)
    }

    /// The same state in cluster mode: `tokens` is the cluster-wide signing key.
    pub fn with_cluster(self, cluster: ClusterNode, tokens: TokenSigner) -> Self {
        self.rebuilt(|inner| {
            inner.node_id = cluster.node_id().to_owned();
            inner.cluster = Some(cluster);
            inner.tokens = tokens;
        })
    }

    /// Programs this node runs at most (0: no limit).
    pub fn program_budget(&self) -> u32 {
        self.media().map(|m| m.hub.program_budget()).unwrap_or(0)
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub fn cluster(&self) -> Option<&ClusterNode> {
        self.inner.cluster.as_ref()
    }

    pub fn api_key(&self) -> &ApiKey {
        &self.inner.api_key
    }

    pub fn tokens(&self) -> &TokenSigner {
        &self.inner.tokens
    }

    pub fn media(&self) -> Option<&Media> {
        self.inner.media.as_ref()
    }

    /// Where the server keeps its files (recordings, spool, token key).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }
}
