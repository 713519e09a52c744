//! Where a new room goes: the power of two random choices over the serving nodes that have
//! room for it (pure: the random picks are an argument).
//!
//! Two random candidates, the less loaded one wins: nearly as even as always taking the least
//! loaded node, without every node sending every new room to the same "least loaded" node
//! during the 2 s before the next heartbeats show what it took.

use crate::node::{NodeInfo, NodeStatus};

/// What a node may take on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Admission {
    /// A node busier than this share of its CPU takes no new room; 1.0: no CPU limit (nodes
    /// sharing one machine, as in tests).
    pub max_cpu: f32,
}

impl Default for Admission {
    fn default() -> Self {
        Admission { max_cpu: 0.85 }
    }
}

/// A node that could take the room, with its room count as of the placement (the heartbeat's
/// may be 2 s old; the count of placed rooms is read fresh).
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub node: &'a NodeInfo,
    pub rooms: u32,
}

/// Whether `node` may take a new room: serving, under its CPU limit and its program budget.
pub fn admits(node: &NodeInfo, admission: Admission) -> bool {
    let load = &node.record.load;
    node.status == NodeStatus::Serving
        && (admission.max_cpu >= 1.0 || load.cpu < admission.max_cpu)
        && load.programs < node.record.program_budget.max(1)
}

/// How loaded a node is, 0.0 (idle) to 1.0 (at its limit): the tighter of CPU and programs.
fn level(node: &NodeInfo, admission: Admission) -> f32 {
    let load = &node.record.load;
    let cpu = if admission.max_cpu >= 1.0 { 0.0 } else { load.cpu / admission.max_cpu.max(0.01) };
    let programs = load.programs as f32 / node.record.program_budget.max(1) as f32;
    cpu.max(programs)
}

/// The less loaded of `a` and `b`: by load level when they differ by a tenth or more (smaller
/// differences are measurement noise), else by fewer rooms.
fn lighter<'a>(a: Candidate<'a>, b: Candidate<'a>, admission: Admission) -> Candidate<'a> {
    let (la, lb) = (level(a.node, admission), level(b.node, admission));
    if (la - lb).abs() >= 0.1 {
        return if la < lb { a } else { b };
    }
    if b.rooms < a.rooms { b } else { a }
}

/// Chooses a node among `candidates` (already filtered by [`admits`]); `pick(n)` returns a
/// random index below `n`. `None` when there is no candidate.
pub fn choose<'a>(
    candidates: &[Candidate<'a>],
    admission: Admission,
    mut pick: impl FnMut(usize) -> usize,
) -> Option<&'a NodeInfo> {
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0].node),
        n => {
            let first = pick(n) % n;
            // A second index, different from the first.
            let second = (first + 1 + pick(n - 1) % (n - 1)) % n;
            Some(lighter(candidates[first], candidates[second], admission).node)
        }
    }
}

/// The node a new participant should join through: the least loaded of the nodes that admit
/// new work, among those of `region` when one is asked for and any there admits (else among
/// all: a call in a farther region beats no call). Unlike [`choose`], this is deterministic:
/// a join URL is handed out once per token, not at the rate of placements, so herding on one
/// node between heartbeats is not a concern. Ties go to fewer participants, then the id.
pub fn least_loaded<'a>(nodes: &'a [NodeInfo], admission: Admission, region: Option<&str>) -> Option<&'a NodeInfo> {
    let open: Vec<&NodeInfo> = nodes.iter().filter(|n| admits(n, admission)).collect();
    let in_region: Vec<&NodeInfo> = match region {
        Some(r) => open.iter().copied().filter(|n| n.record.region.as_deref() == Some(r)).collect(),
        None => Vec::new(),
    };
    let pool = if in_region.is_empty() { open } else { in_region };
    pool.into_iter().min_by(|a, b| {
        let (la, lb) = (level(a, admission), level(b, admission));
        // Levels within a tenth of each other are the same load (see `lighter`).
        let by_level = if (la - lb).abs() >= 0.1 { la.total_cmp(&lb) } else { std::cmp::Ordering::Equal };
        by_level.then(a.record.load.participants.cmp(&b.record.load.participants)).then_with(|| a.id().cmp(b.id()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{NodeLoad, NodeRecord};

    fn node(id: &str, status: NodeStatus, cpu: f32, programs: u32) -> NodeInfo {
        NodeInfo {
            record: NodeRecord {
                id: id.into(),
                url: format!("http://{id}"),
                status,
                region: None,
                relay: None,
                load: NodeLoad { rooms: 0, participants: 0, programs, cpu },
                program_budget: 3,
                updated_at_ms: 0,
            },
            status,
        }
    }

    #[test]
    fn only_serving_nodes_under_their_limits_admit() {
        let a = Admission::default();
        assert!(admits(&node("a", NodeStatus::Serving, 0.5, 2), a));
        assert!(!admits(&node("a", NodeStatus::Serving, 0.5, 3), a), "program budget reached");
        assert!(!admits(&node("a", NodeStatus::Serving, 0.9, 0), a), "CPU over the limit");
        assert!(admits(&node("a", NodeStatus::Serving, 1.0, 0), Admission { max_cpu: 1.0 }), "no CPU limit");
        assert!(!admits(&node("a", NodeStatus::Draining, 0.0, 0), a));
        assert!(!admits(&node("a", NodeStatus::Down, 0.0, 0), a));
    }

    #[test]
    fn no_candidate_no_choice_and_one_candidate_is_chosen() {
        let a = Admission::default();
        assert!(choose(&[], a, |_| 0).is_none());
        let n = node("a", NodeStatus::Serving, 0.0, 0);
        assert_eq!(choose(&[Candidate { node: &n, rooms: 9 }], a, |_| 0).unwrap().id(), "a");
    }

    #[test]
    fn of_two_picks_the_lighter_wins() {
        let a = Admission::default();
        let busy = node("busy", NodeStatus::Serving, 0.7, 2);
        let idle = node("idle", NodeStatus::Serving, 0.1, 0);
        let c = [Candidate { node: &busy, rooms: 0 }, Candidate { node: &idle, rooms: 5 }];
        assert_eq!(choose(&c, a, |_| 0).unwrap().id(), "idle");
        // Same load level: fewer rooms wins.
        let x = node("x", NodeStatus::Serving, 0.20, 0);
        let y = node("y", NodeStatus::Serving, 0.25, 0);
        let c = [Candidate { node: &x, rooms: 3 }, Candidate { node: &y, rooms: 2 }];
        assert_eq!(choose(&c, a, |_| 0).unwrap().id(), "y");
    }

    #[test]
    fn the_two_picks_are_always_different_nodes() {
        let a = Admission::default();
        let nodes: Vec<NodeInfo> = (0..3).map(|i| node(&format!("n{i}"), NodeStatus::Serving, 0.0, 0)).collect();
        // The most loaded node can only win against itself; with distinct picks it never wins.
        let rooms = [0, 1, 7];
        let c: Vec<Candidate> = nodes.iter().zip(rooms).map(|(node, rooms)| Candidate { node, rooms }).collect();
        for first in 0..3 {
            for second in 0..2 {
                let mut picks = [first, second].into_iter();
                let chosen = choose(&c, a, |_| picks.next().unwrap()).unwrap();
                assert_ne!(chosen.id(), "n2", "picks {first},{second}");
            }
        }
    }

    fn in_region(mut n: NodeInfo, region: &str, participants: u32) -> NodeInfo {
        n.record.region = Some(region.into());
        n.record.load.participants = participants;
        n
    }

    #[test]
    fn a_region_is_preferred_and_the_least_loaded_node_there_is_chosen() {
        let a = Admission::default();
        let nodes = [
            in_region(node("eu1", NodeStatus::Serving, 0.5, 0), "eu", 4),
            in_region(node("eu2", NodeStatus::Serving, 0.1, 0), "eu", 9),
            in_region(node("us1", NodeStatus::Serving, 0.0, 0), "us", 0),
            in_region(node("us2", NodeStatus::Serving, 0.02, 0), "us", 0),
            in_region(node("ap1", NodeStatus::Draining, 0.0, 0), "ap", 0),
        ];
        assert_eq!(least_loaded(&nodes, a, Some("eu")).unwrap().id(), "eu2", "lower CPU level wins");
        assert_eq!(least_loaded(&nodes, a, Some("us")).unwrap().id(), "us1", "equal levels: then the id");
        assert_eq!(least_loaded(&nodes, a, None).unwrap().id(), "us1");
        // A region whose only node is draining (or an unknown one): the least loaded anywhere.
        assert_eq!(least_loaded(&nodes, a, Some("ap")).unwrap().id(), "us1");
        assert_eq!(least_loaded(&nodes, a, Some("mars")).unwrap().id(), "us1");
        // Near-equal levels: fewer participants wins.
        let close = [
            in_region(node("x", NodeStatus::Serving, 0.20, 0), "eu", 7),
            in_region(node("y", NodeStatus::Serving, 0.25, 0), "eu", 2),
        ];
        assert_eq!(least_loaded(&close, a, Some("eu")).unwrap().id(), "y");
        assert!(least_loaded(&[], a, None).is_none());
    }

    #[test]
    fn many_placements_spread_evenly() {
        // 100 rooms over 3 idle nodes with a simple LCG for the picks: the counts stay close.
        let a = Admission::default();
        let nodes: Vec<NodeInfo> = (0..3).map(|i| node(&format!("n{i}"), NodeStatus::Serving, 0.0, 0)).collect();
        let mut rooms = [0u32; 3];
        let mut seed = 12345u64;
        let mut rand = |n: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n
        };
        for _ in 0..100 {
            let c: Vec<Candidate> = nodes.iter().zip(rooms).map(|(node, rooms)| Candidate { node, rooms }).collect();
            let id = choose(&c, a, &mut rand).unwrap().id().to_owned();
            rooms[nodes.iter().position(|n| n.id() == id).unwrap()] += 1;
        }
        let (min, max) = (rooms.iter().min().unwrap(), rooms.iter().max().unwrap());
        assert!(max - min <= 2, "{rooms:?}");
    }
}
