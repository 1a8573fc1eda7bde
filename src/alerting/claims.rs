//! Claims: "I am sending this notification", replicated before a node sends.
//!
//! In a cluster, the node ranked first for a (group, receiver integration) claims it, replicates
//! the claim, then sends; while it retries it renews the claim. Lower-ranked nodes that reach
//! their turn hold off while another live node holds an unexpired claim, and go ahead once it
//! expires (a dead owner stops renewing). A claim is short-lived and never persisted: after a
//! restart the notification log, not a claim, says what was sent.
//!
//! Claims are a replicated state. Per (group key, receiver) the claim that expires last wins,
//! ties broken by the claiming node's name and then the claim time, so the merge is commutative,
//! associative and idempotent.

use super::nflog::ReceiverKey;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Claims held at most; a claim lives about a peer timeout, so this is many flushes' worth.
pub const MAX_CLAIMS: usize = 100_000;

/// One node's claim on one notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub group_key: String,
    pub receiver: ReceiverKey,
    /// The claiming node's name.
    pub node: String,
    #[serde(with = "super::wire::time")]
    pub claimed_at: Timestamp,
    #[serde(with = "super::wire::time")]
    pub expires_at: Timestamp,
}

impl Claim {
    fn precedence(&self, other: &Claim) -> Ordering {
        self.expires_at
            .cmp(&other.expires_at)
            .then_with(|| self.node.cmp(&other.node))
            .then_with(|| self.claimed_at.cmp(&other.claimed_at))
    }

    pub fn is_live_at(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }

    /// The version of two claims on the same notification that replication keeps.
    pub fn merged<'a>(&'a self, other: &'a Claim) -> &'a Claim {
        if other.precedence(self) == Ordering::Greater {
            other
        } else {
            self
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, String> {
        super::wire::encode(self)
    }

    /// Decodes one claim from a peer; the whole input must be that claim.
    pub fn decode(bytes: &[u8]) -> Result<Claim, String> {
        super::wire::decode(bytes, "claim")
    }
}

/// Counters of what the claims store did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimCounters {
    /// Claims this node made or renewed.
    pub made: u64,
    /// Claims from peers that changed the state.
    pub merged: u64,
    /// Times this node held off because another live node held a claim.
    pub held_off: u64,
    /// Claims refused because the store was full.
    pub rejected_full: u64,
}

/// The claims known to this node, by (group key, receiver integration).
#[derive(Debug, Default)]
pub struct Claims {
    claims: BTreeMap<(String, ReceiverKey), Claim>,
    pub counters: ClaimCounters,
}

impl Claims {
    pub fn new() -> Claims {
        Claims::default()
    }

    pub fn len(&self) -> usize {
        self.claims.len()
    }

    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Claim> {
        self.claims.values()
    }

    /// The live claim on a notification held by a node other than `me`, if any.
    pub fn held_by_other(
        &self,
        group_key: &str,
        receiver: &ReceiverKey,
        me: &str,
        now: Timestamp,
    ) -> Option<&Claim> {
        self.claims
            .get(&(group_key.to_string(), receiver.clone()))
            .filter(|claim| claim.node != me && claim.is_live_at(now))
    }

    /// Records this node's own claim (new or renewed) and returns it, to replicate.
    pub fn claim(&mut self, claim: Claim) -> Option<Claim> {
        self.counters.made += 1;
        self.merge(claim)
    }

    /// Merges a claim from a peer (or this node). Returns it if it changed the state.
    pub fn merge(&mut self, claim: Claim) -> Option<Claim> {
        let key = (claim.group_key.clone(), claim.receiver.clone());
        match self.claims.get_mut(&key) {
            Some(held) => {
                if claim.precedence(held) != Ordering::Greater {
                    return None;
                }
                *held = claim.clone();
            }
            None => {
                if self.claims.len() >= MAX_CLAIMS {
                    self.counters.rejected_full += 1;
                    return None;
                }
                self.claims.insert(key, claim.clone());
            }
        }
        self.counters.merged += 1;
        Some(claim)
    }

    /// Forgets expired claims; returns how many.
    pub fn gc(&mut self, now: Timestamp) -> usize {
        let before = self.claims.len();
        self.claims.retain(|_, claim| claim.is_live_at(now));
        before - self.claims.len()
    }
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

    fn claim(node: &str, claimed: i64, expires: i64) -> Claim {
        Claim {
            group_key: "{}:{alertname=\"A\"}".into(),
            receiver: receiver(),
            node: node.into(),
            claimed_at: Timestamp::from_second(claimed).unwrap(),
            expires_at: Timestamp::from_second(expires).unwrap(),
        }
    }

    #[test]
    fn another_nodes_live_claim_holds_off_until_it_expires() {
        let mut claims = Claims::new();
        claims.merge(claim("b", 100, 115));
        let key = receiver();
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(
            claims
                .held_by_other("{}:{alertname=\"A\"}", &key, "a", at(110))
                .is_some()
        );
        assert!(
            claims
                .held_by_other("{}:{alertname=\"A\"}", &key, "b", at(110))
                .is_none()
        );
        assert!(
            claims
                .held_by_other("{}:{alertname=\"A\"}", &key, "a", at(115))
                .is_none()
        );
        assert_eq!(claims.gc(at(115)), 1);
        assert!(claims.is_empty());
    }

    #[test]
    fn codec_round_trips_and_refuses_garbage() {
        let original = claim("node-1", 1_700_000_000, 1_700_000_015);
        let bytes = original.encode().unwrap();
        assert_eq!(Claim::decode(&bytes).unwrap(), original);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Claim::decode(&longer).is_err());
        assert!(Claim::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    fn arbitrary_claim() -> impl Strategy<Value = Claim> {
        ("[abc]", 0i64..5, 0i64..5).prop_map(|(node, claimed, expires)| {
            claim(&node, 1_000 + claimed, 1_000 + claimed + expires)
        })
    }

    fn merged_state(order: &[Claim]) -> Vec<Claim> {
        let mut claims = Claims::new();
        for claim in order {
            claims.merge(claim.clone());
        }
        claims.iter().cloned().collect()
    }

    proptest! {
        /// The CRDT laws: any order and any repetition of the same claims gives the same state.
        #[test]
        fn merge_is_commutative_associative_idempotent(
            claims in proptest::collection::vec(arbitrary_claim(), 1..8),
            seed in any::<u64>(),
        ) {
            let forward = merged_state(&claims);
            let mut shuffled = claims.clone();
            // A deterministic shuffle from the seed.
            let mut state = seed;
            for index in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(index, (state >> 33) as usize % (index + 1));
            }
            let mut repeated = shuffled.clone();
            repeated.extend(claims.iter().cloned());
            prop_assert_eq!(&forward, &merged_state(&shuffled));
            prop_assert_eq!(&forward, &merged_state(&repeated));
            for (a, b) in claims.iter().zip(claims.iter().skip(1)) {
                prop_assert_eq!(a.merged(b), b.merged(a));
            }
        }
    }
}
