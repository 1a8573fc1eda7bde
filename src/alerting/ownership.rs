//! Who notifies: per (group, receiver integration) the live members are ranked by rendezvous
//! hashing; rank k waits k × peer timeout before consulting the notification log.
//!
//! Rendezvous (highest-random-weight) hashing gives every node the same ranking from the same
//! member list without coordination, spreads ownership of groups evenly across nodes, and when
//! a member leaves only the groups it owned move (to their second-ranked node).

use super::nflog::ReceiverKey;
use jiff::SignedDuration;

/// This node's view of the cluster, as the membership layer last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// This node's name.
    pub me: String,
    /// Names of the live members, this node included.
    pub live: Vec<String>,
    /// What a rank costs in waiting.
    pub peer_timeout: SignedDuration,
}

impl ClusterView {
    /// A node alone: rank 0 for everything.
    pub fn alone(me: &str) -> ClusterView {
        ClusterView {
            me: me.to_string(),
            live: vec![me.to_string()],
            peer_timeout: SignedDuration::ZERO,
        }
    }

    pub fn is_live(&self, node: &str) -> bool {
        self.live.iter().any(|member| member == node)
    }

    /// This node's rank for a notification: 0 is the owner. A node missing from its own live
    /// list (membership has not seen it yet) ranks itself as if it were there.
    pub fn rank(&self, group_key: &str, receiver: &ReceiverKey) -> usize {
        let my_score = score(&self.me, group_key, receiver);
        self.live
            .iter()
            .filter(|member| **member != self.me)
            .filter(|member| {
                let theirs = score(member, group_key, receiver);
                (theirs, member.as_str()) > (my_score, self.me.as_str())
            })
            .count()
    }

    /// How long this node waits before it may notify.
    pub fn wait(&self, group_key: &str, receiver: &ReceiverKey) -> SignedDuration {
        let rank = i32::try_from(self.rank(group_key, receiver)).unwrap_or(i32::MAX);
        self.peer_timeout
            .checked_mul(rank)
            .unwrap_or(SignedDuration::MAX)
    }
}

/// A node's weight for one notification: a stable 64-bit hash (FNV-1a with a final mix), the
/// same on every node and every platform.
fn score(node: &str, group_key: &str, receiver: &ReceiverKey) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator no name contains, so ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    };
    feed(node.as_bytes());
    feed(group_key.as_bytes());
    feed(receiver.name.as_bytes());
    feed(receiver.integration.as_bytes());
    feed(&receiver.index.to_le_bytes());
    // splitmix64's finalizer: FNV's low bits alone mix poorly.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn receiver() -> ReceiverKey {
        ReceiverKey {
            name: "team".into(),
            integration: "webhook".into(),
            index: 0,
        }
    }

    fn view(me: &str, live: &[&str]) -> ClusterView {
        ClusterView {
            me: me.into(),
            live: live.iter().map(|name| name.to_string()).collect(),
            peer_timeout: SignedDuration::from_secs(15),
        }
    }

    proptest! {
        /// Every node computes a distinct rank, so exactly one owner exists, from any order of
        /// the member list.
        #[test]
        fn ranks_are_a_permutation(group in "[a-z]{1,12}", mut members in proptest::collection::btree_set("[a-e]{1,3}", 1..7)) {
            let names: Vec<String> = std::mem::take(&mut members).into_iter().collect();
            let mut reversed = names.clone();
            reversed.reverse();
            let mut ranks: Vec<usize> = names
                .iter()
                .map(|me| {
                    let forward = ClusterView { me: me.clone(), live: names.clone(), peer_timeout: SignedDuration::from_secs(1) };
                    let backward = ClusterView { live: reversed.clone(), ..forward.clone() };
                    let rank = forward.rank(&group, &receiver());
                    assert_eq!(rank, backward.rank(&group, &receiver()));
                    rank
                })
                .collect();
            ranks.sort_unstable();
            prop_assert_eq!(ranks, (0..names.len()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn ownership_spreads_across_nodes() {
        let nodes = ["a", "b", "c"];
        let mut owned = [0usize; 3];
        for group in 0..3_000 {
            let key = format!("{{}}:{{instance=\"host-{group}\"}}");
            for (index, node) in nodes.iter().enumerate() {
                if view(node, &nodes).rank(&key, &receiver()) == 0 {
                    owned[index] += 1;
                }
            }
        }
        assert_eq!(owned.iter().sum::<usize>(), 3_000);
        for count in owned {
            assert!((800..1_200).contains(&count), "uneven: {owned:?}");
        }
    }

    #[test]
    fn a_departed_owner_hands_over_to_its_second() {
        let key = "{}:{alertname=\"Disk\"}";
        let all = ["a", "b", "c"];
        let owner = *all
            .iter()
            .find(|node| view(node, &all).rank(key, &receiver()) == 0)
            .unwrap();
        let second = *all
            .iter()
            .find(|node| view(node, &all).rank(key, &receiver()) == 1)
            .unwrap();
        let remaining: Vec<&str> = all.iter().copied().filter(|node| *node != owner).collect();
        assert_eq!(view(second, &remaining).rank(key, &receiver()), 0);
        assert_eq!(
            view(second, &all).wait(key, &receiver()),
            SignedDuration::from_secs(15)
        );
        assert_eq!(ClusterView::alone("solo").rank(key, &receiver()), 0);
    }
}
