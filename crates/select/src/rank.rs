//! Candidate order: higher `weight`, then lower `priority`, then the
//! lexically smaller name, then the lower index.
//!
//! routerd sorts the ready candidates (stable sort, O(R log R), four
//! allocations) and takes the first; an argmax under the same total order
//! gives the same winner in O(C) without allocating.

use std::cmp::Ordering;

/// A resolved candidate: what the order and the status need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CandidateState {
    /// Status name.
    pub name: String,
    /// `source` reference (`""` when none).
    pub source: String,
    /// Resolved kernel device.
    pub device: String,
    /// Resolved gateway.
    pub gateway: String,
    /// `gatewaySource`, defaulted to `none`.
    pub gateway_source: String,
    /// Route table.
    pub route_table: i64,
    /// Route metric.
    pub metric: i64,
    /// Higher wins.
    pub weight: i64,
    /// Lower wins among equal weights.
    pub priority: i64,
    /// Position in `spec.candidates`.
    pub index: usize,
    /// Usable for new flows.
    pub ready: bool,
    /// Taken out by configuration.
    pub disabled: bool,
}

/// Compares two candidates in selection order: `Less` means `a` is better.
pub fn rank_cmp(a: &CandidateState, b: &CandidateState) -> Ordering {
    b.weight
        .cmp(&a.weight)
        .then(a.priority.cmp(&b.priority))
        .then_with(|| a.name.cmp(&b.name))
        .then(a.index.cmp(&b.index))
}

/// The best ready candidate, if any.
pub fn best_ready(candidates: &[CandidateState]) -> Option<&CandidateState> {
    best_of(candidates.iter().filter(|c| c.ready))
}

/// The best of `iter` in selection order.
pub fn best_of<'a>(iter: impl Iterator<Item = &'a CandidateState>) -> Option<&'a CandidateState> {
    iter.reduce(|best, c| {
        if rank_cmp(c, best) == Ordering::Less {
            c
        } else {
            best
        }
    })
}

/// Which key decided between a winner and the runner-up, in words.
pub fn tie_break(winner: &CandidateState, runner_up: &CandidateState) -> String {
    if winner.weight != runner_up.weight {
        format!(
            "weight {} > {} ({})",
            winner.weight, runner_up.weight, runner_up.name
        )
    } else if winner.priority != runner_up.priority {
        format!(
            "equal weight {}, priority {} < {} ({})",
            winner.weight, winner.priority, runner_up.priority, runner_up.name
        )
    } else if winner.name != runner_up.name {
        format!(
            "equal weight {} and priority {}, name {:?} < {:?}",
            winner.weight, winner.priority, winner.name, runner_up.name
        )
    } else {
        format!(
            "equal weight, priority and name, index {} < {}",
            winner.index, runner_up.index
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, weight: i64, priority: i64, index: usize, ready: bool) -> CandidateState {
        CandidateState {
            name: name.into(),
            weight,
            priority,
            index,
            ready,
            ..CandidateState::default()
        }
    }

    #[test]
    fn weight_then_priority_then_name_then_index() {
        let cs = [c("b", 10, 5, 0, true), c("a", 10, 5, 1, true)];
        assert_eq!(best_ready(&cs).unwrap().name, "a");
        let cs = [c("a", 10, 5, 0, true), c("b", 10, 1, 1, true)];
        assert_eq!(best_ready(&cs).unwrap().name, "b");
        let cs = [c("a", 10, 1, 0, true), c("b", 20, 9, 1, true)];
        assert_eq!(best_ready(&cs).unwrap().name, "b");
        let cs = [c("a", 1, 1, 1, true), c("a", 1, 1, 0, true)];
        assert_eq!(best_ready(&cs).unwrap().index, 0);
    }

    #[test]
    fn only_ready_candidates_win() {
        let cs = [c("a", 99, 0, 0, false), c("b", 1, 0, 1, true)];
        assert_eq!(best_ready(&cs).unwrap().name, "b");
        let cs = [c("a", 99, 0, 0, false)];
        assert!(best_ready(&cs).is_none());
    }

    #[test]
    fn tie_break_names_the_deciding_key() {
        assert!(
            tie_break(&c("a", 2, 0, 0, true), &c("b", 1, 0, 1, true)).starts_with("weight 2 > 1")
        );
        assert!(
            tie_break(&c("a", 1, 0, 0, true), &c("b", 1, 3, 1, true)).contains("priority 0 < 3")
        );
        assert!(tie_break(&c("a", 1, 0, 0, true), &c("b", 1, 0, 1, true)).contains("name"));
        assert!(tie_break(&c("a", 1, 0, 0, true), &c("a", 1, 0, 1, true)).contains("index 0 < 1"));
    }
}
