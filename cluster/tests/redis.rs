//! The cluster handle against a real `redis-server` (Debian's, started on a free loopback port):
//! heartbeats and status, placement under the lock, release and claim, records, secrets, and
//! what a Redis outage looks like to callers.

use std::time::Duration;

use tessera_cluster::{Admission, Cluster, ClusterConfig, ClusterError, NodeLoad, NodeStatus};
use tessera_testkit::redis::Redis;

fn node(redis: &Redis, id: &str) -> Cluster {
    Cluster::connect(ClusterConfig {
        redis_url: redis.url(),
        node_id: id.into(),
        public_url: format!("http://{id}.test"),
        program_budget: 2,
        region: None,
        admission: Admission { max_cpu: 1.0 },
        key_prefix: "test:".into(),
    })
    .expect("a handle")
}

fn idle() -> NodeLoad {
    NodeLoad::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_report_their_load_and_a_drained_node_takes_no_room() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    a.heartbeat(NodeLoad { rooms: 1, participants: 3, programs: 1, cpu: 0.25 }).await.unwrap();
    b.heartbeat(idle()).await.unwrap();
    let nodes = b.nodes().await.unwrap();
    assert_eq!(nodes.iter().map(|n| n.id()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(nodes[0].record.load.participants, 3);
    assert_eq!(nodes[0].url(), "http://a.test");
    assert!(nodes.iter().all(|n| n.status == NodeStatus::Serving));

    b.set_draining();
    b.heartbeat(idle()).await.unwrap();
    assert_eq!(a.node("b").await.unwrap().unwrap().status, NodeStatus::Draining);
    for i in 0..5 {
        assert_eq!(a.place(&format!("r{i}")).await.unwrap().id(), "a", "a draining node gets no room");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_placing_one_room_at_once_agree() {
    let redis = Redis::start();
    let nodes: Vec<Cluster> = (0..3).map(|i| node(&redis, &format!("n{i}"))).collect();
    for n in &nodes {
        n.heartbeat(idle()).await.unwrap();
    }
    for round in 0..20 {
        let room = format!("room{round}");
        let placed = futures_util::future::join_all(nodes.iter().map(|n| n.place(&room)))
            .await
            .into_iter()
            .map(|r| r.unwrap().id().to_owned());
        let placed: Vec<String> = placed.collect();
        assert!(placed.windows(2).all(|w| w[0] == w[1]), "one host for {room}: {placed:?}");
    }
    // 20 rooms spread: every node has some.
    for n in &nodes {
        assert!(n.placed_here().await.unwrap().len() >= 5, "{}", n.node_id());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_nodes_refuse_and_a_down_node_loses_its_rooms() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    // Both at their program budget (2): no room can go anywhere.
    a.heartbeat(NodeLoad { programs: 2, ..idle() }).await.unwrap();
    b.heartbeat(NodeLoad { programs: 2, ..idle() }).await.unwrap();
    assert!(matches!(a.place("x").await, Err(ClusterError::NoCapacity)));
    assert_eq!(a.stats().refused, 1);

    // b has room again and takes it; then b falls silent and the room moves to a.
    b.heartbeat(idle()).await.unwrap();
    assert_eq!(a.place("x").await.unwrap().id(), "b");
    assert_eq!(a.host_of("x").await.unwrap().unwrap().id(), "b");
    a.heartbeat(idle()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    a.heartbeat(idle()).await.unwrap();
    assert_eq!(a.node("b").await.unwrap().unwrap().status, NodeStatus::Down);
    assert!(a.host_of("x").await.unwrap().is_none(), "a down node hosts nothing");
    assert_eq!(b.place("x").await.unwrap().id(), "a", "placed again at its next use");
    assert_eq!(a.placed_here().await.unwrap(), ["x"]);
    assert!(b.placed_here().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_and_claim_only_touch_this_nodes_rooms() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    a.heartbeat(idle()).await.unwrap();
    assert_eq!(a.place("r").await.unwrap().id(), "a");
    assert!(!b.release("r").await.unwrap(), "b cannot release a's room");
    assert!(!b.claim("r").await.unwrap(), "nor claim it");
    assert!(a.release("r").await.unwrap());
    assert!(a.host_of("r").await.unwrap().is_none());
    assert!(b.claim("r").await.unwrap(), "a room placed nowhere can be claimed");
    assert_eq!(b.placed_here().await.unwrap(), ["r"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_secrets_are_shared() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    a.put_record("recordings", "rec1", &serde_json::json!({"id": "rec1", "node": "a"})).await.unwrap();
    assert_eq!(b.record_of("recordings", "rec1").await.unwrap().unwrap()["node"], "a");
    assert_eq!(b.records("recordings").await.unwrap().len(), 1);
    assert!(b.record_of("recordings", "nope").await.unwrap().is_none());
    let first = a.shared_secret("k", "from-a").await.unwrap();
    let second = b.shared_secret("k", "from-b").await.unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("from-a", "from-a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_away_is_an_error_not_a_hang_and_calls_work_again_after() {
    let mut redis = Redis::start();
    let a = node(&redis, "a");
    a.heartbeat(idle()).await.unwrap();
    assert!(a.stats().redis_up);
    redis.stop();
    let started = std::time::Instant::now();
    let err = a.place("r").await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(!a.stats().redis_up);
    redis.restart();
    let mut back = false;
    for _ in 0..50 {
        if a.heartbeat(idle()).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "the handle reconnects by itself");
    assert_eq!(a.place("r").await.unwrap().id(), "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_for_an_hour_is_forgotten_with_its_placements() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    a.heartbeat(idle()).await.unwrap();
    assert_eq!(b.place("old").await.unwrap().id(), "a");
    // a's record as it would be after an hour of silence.
    let mut record = a.record(idle());
    record.updated_at_ms -= 3_600_001;
    let mut raw = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg("test:nodes")
        .arg("a")
        .arg(serde_json::to_string(&record).unwrap())
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(b.forget_departed().await.unwrap(), 1);
    assert!(b.nodes().await.unwrap().is_empty());
    let left: Vec<String> = redis::cmd("KEYS").arg("test:*room*").query_async(&mut raw).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
